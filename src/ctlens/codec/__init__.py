"""ROI detection and the lossless / ROI-lossless series container (`.ctz`)."""
