"""``alembert frontier``: the students a teacher can have on this CPU, planned from predicted speeds and
estimated costs (plan.py, predict.py), trained within a time budget, exported, measured in one bench run, and
the best one for a latency or speed budget chosen (choose.py), with the chart (chart.py) and reports (report.py);
run.py puts them in order. Calling the package, ``alembert.frontier(...)``, runs :func:`alembert.api.frontier`
(see alembert/_callable.py)."""

from alembert._callable import make_callable

make_callable(__name__)
