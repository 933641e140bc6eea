"""What ``bentoml serve`` and the Bento load (``serving.server:ZooServe``): the start-up hooks,
then ZooServe's services made BentoML services for the settings in force.

- The API worker (``zooserve``) is the gateway: a plain ASGI app mounted with
  ``@bentoml.asgi_app``, answering every route of ``serving.routes`` (BentoML's own health and
  metrics routes behind it). Its timeout, concurrency and CORS are the gateway's (``ZOOSERVE_*``
  settings), not BentoML's ``traffic`` or ``http`` options.
- The Classifiers (adaptive batching) and the Generators are BentoML services with
  ``@bentoml.api`` methods, each a worker process, declared only where this server has models
  for them.
"""

from __future__ import annotations

import bentoml

from serving import routes, service
from serving.protocol.admission import CancelWhenGone
from serving.protocol.gateway import Gateway
from serving.repository.catalog import GENERATIVE_MODELS
from serving.repository.sessions import batching_pays
from serving.repository.training_plan import any_expected
from serving.runtime import startup
from serving.settings import Settings

# BentoML's client for a dependency replaces its HTTP session every 100 calls or 300 s and closes
# the old one under requests still in flight on it (a 500 for each); the workers it talks to are
# local sockets, so the session is kept for the process's life.
KEEP_CONNECTIONS = {"max_requests": 2**62, "max_age": 1e12}


def services(settings: Settings) -> bentoml.Service:
    """The API worker's service, with the dependency services it calls."""
    resources = {"gpu": settings.gpus} if settings.gpus else {}
    # The dependency workers keep BentoML's in-flight limit; the API worker admits by route
    # (``admission``), so BentoML's single pool is off there.
    traffic = {"timeout": settings.timeout_seconds, "max_concurrency": settings.max_concurrency}
    dependency = {"workers": 1, "traffic": traffic, "resources": resources, "runner_connection": KEEP_CONNECTIONS}
    classifiers = bentoml.service(name="zooserve-classifiers", **dependency)(service.Classifiers)
    generators = bentoml.service(name="zooserve-generators", **dependency)(service.Generators)
    generators.add_asgi_middleware(CancelWhenGone, applies=lambda path: path == "/sample")
    # A dependency is a worker process of its own (about 120 MB before any model); one with nothing
    # to run is not declared, so BentoML does not start it.
    depends = {}
    if batching_pays(settings):
        depends["classifiers"] = bentoml.depends(classifiers)
    if any_expected(settings, GENERATIVE_MODELS):
        depends["generators"] = bentoml.depends(generators)
    api = type("ZooServe", (service.ZooServe,), {**depends, "__module__": __name__})
    gateway = Gateway(routes.table(), settings,
                      limits={"predict": settings.max_concurrency, "generation": settings.max_generations,
                              "streams": settings.max_concurrency})
    return bentoml.asgi_app(gateway, path="/")(bentoml.service(
        name="zooserve", traffic={"timeout": settings.timeout_seconds, "max_concurrency": None},
        resources=resources)(api))


startup.run(Gateway)
ZooServe = services(Settings.from_env())
