"""The upscaling journey: `upscale_video` (`run`) streams frames through the model in overlapping windows
(`windows`) and into a writer."""
