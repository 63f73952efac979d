"""Network definitions for the weights the `campplus` diarizer loads (models/diarize_campplus.py): pyannote's
segmentation-3.0 (PyanNet) and 3D-Speaker's CAM++. Only their forward passes, copied from the projects that
trained them (licences in each module); importing this package is cheap, its modules import torch.
"""
