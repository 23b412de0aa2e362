"""The data layer: reading labelled files and text inputs, downloading, splitting, reporting."""
