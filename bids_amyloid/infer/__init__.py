"""Participant-level inference: fold-ensemble prediction (``predict``), the predictions tables
(``table``) and saliency maps in template and native space (``ensemble``, ``saliency``,
``volumes``, ``regions``)."""
