"""SavedModel export and WOSAC submission generation."""
