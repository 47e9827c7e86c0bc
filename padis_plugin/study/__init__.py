"""Blinded reader studies of reconstructions (``padis-study``): build a k-way forced-choice study from
``padis-bench`` outputs (:mod:`.create`), let readers answer it in the browser (:mod:`.server`, answers in
SQLite through :mod:`.db`), and unblind it into the paper's Table-2 form (:mod:`.analyze`, :mod:`.stats`)."""
