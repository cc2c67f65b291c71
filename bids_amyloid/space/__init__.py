"""The reference space every stage shares: the MNI152NLin2009aSym template grid and masks
(``space.template``), the AAL atlas (``space.atlas``) and nibabel <-> ANTs images in memory
(``space.antsio``). Below the stages: preprocessing, inference, reports and the generator use it.
"""
