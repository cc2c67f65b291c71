"""Participant-level inference: fold-ensemble prediction (``predict``) and saliency maps in
template and native space (``ensemble``, ``saliency``, ``volumes``, ``regions``)."""
