"""Long-horizon forecasting: reading and validating series, bundled real series, windows and models."""
