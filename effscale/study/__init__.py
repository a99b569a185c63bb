"""Studies: a plan of points (plan, files), run by one engine (engine) through executors
(executors) that each train a point with worker.run_point, into a run directory
(effscale.rundir); estimate says how long before anything trains, search finds the
coefficients."""
