"""The metadata of a WOSAC submission: its flags and the challenge's rules on them.

Every field of `SimAgentsChallengeSubmission` the challenge requires is a flag of
`python -m export.wosac_submission`; `submission_metadata` checks the values and returns the
metadata every shard carries.
"""

from __future__ import annotations

from absl import app, flags

_REQUIRED = (
    "account_name",
    "method_name",
    "authors",
    "affiliation",
    "description",
    "method_link",
    "uses_lidar_data",
    "uses_camera_data",
    "uses_public_model_pretraining",
    "acknowledge_complies_with_closed_loop_requirement",
)


def define_metadata_flags() -> None:
    """The metadata flags (called by the CLI's `define_flags`, never at import)."""
    flags.DEFINE_string("account_name", None, "Waymo Open Dataset account e-mail.")
    flags.DEFINE_string("method_name", None, "Unique method name on the leaderboard.")
    flags.DEFINE_list("authors", None, "Comma-separated author names.")
    flags.DEFINE_string("affiliation", None, "Authors' affiliation.")
    flags.DEFINE_string("description", None, "Short method description.")
    flags.DEFINE_string("method_link", None, "Paper or code link.")
    flags.DEFINE_string(
        "num_model_parameters",
        None,
        "Model size as shown on the leaderboard, e.g. 1.2M (default: the "
        "count export.export_model recorded in the SavedModel's sim_agent.json).",
    )
    flags.DEFINE_bool("uses_lidar_data", None, "Whether the method uses lidar.")
    flags.DEFINE_bool("uses_camera_data", None, "Whether the method uses cameras.")
    flags.DEFINE_bool(
        "uses_public_model_pretraining", None, "Whether public pretrained models were used."
    )
    flags.DEFINE_list("public_model_names", [], "Names of the public pretrained models, if used.")
    flags.DEFINE_bool(
        "acknowledge_complies_with_closed_loop_requirement",
        None,
        "Must be true: the rollouts were produced closed-loop (the challenge's rule).",
    )
    flags.mark_flags_as_required(_REQUIRED)


def submission_metadata(values: dict) -> dict:
    """`SimAgentsChallengeSubmission` metadata from flag values, checked against the rules.

    Args:
      values: flag name -> value (the flags of `define_metadata_flags`).

    Raises:
      app.UsageError: a required field is empty or a rule is broken.
    """
    if not values["acknowledge_complies_with_closed_loop_requirement"]:
        raise app.UsageError(
            "--acknowledge_complies_with_closed_loop_requirement must be true: "
            "WOSAC only accepts closed-loop simulations"
        )
    if values["uses_public_model_pretraining"] and not values["public_model_names"]:
        raise app.UsageError("--uses_public_model_pretraining=true needs --public_model_names")
    for name in (
        "account_name",
        "method_name",
        "affiliation",
        "description",
        "method_link",
        "num_model_parameters",
    ):
        if not str(values[name]).strip():
            raise app.UsageError(f"--{name} must not be empty")
    authors = [a.strip() for a in values["authors"] if a.strip()]
    if not authors:
        raise app.UsageError("--authors must name at least one author")
    return {
        "account_name": values["account_name"],
        "unique_method_name": values["method_name"],
        "authors": authors,
        "affiliation": values["affiliation"],
        "description": values["description"],
        "method_link": values["method_link"],
        "num_model_parameters": values["num_model_parameters"],
        "uses_lidar_data": bool(values["uses_lidar_data"]),
        "uses_camera_data": bool(values["uses_camera_data"]),
        "uses_public_model_pretraining": bool(values["uses_public_model_pretraining"]),
        "public_model_names": list(values["public_model_names"]),
        "acknowledge_complies_with_closed_loop_requirement": True,
    }
