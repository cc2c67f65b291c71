"""Self-contained HTML reports: per participant (``participant``) and after the group level
(``group``); figures in ``figures``, page frame in ``templates/page.html``."""
