"""Running imgzoo's tasks inside other engines, each through :meth:`imgzoo.Pipeline.run`.

:mod:`imgzoo.integrations.ray`: batch inference on Ray Data (:class:`~imgzoo.integrations.ray.TaskPredictor`,
``imgzoo run --engine ray``) and the HTTP server on Ray Serve (``imgzoo serve --engine ray``).
Each module needs its extra (``pip install "imgzoo[ray]"``); importing it does not.
"""
