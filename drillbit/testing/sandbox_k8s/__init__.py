"""The sandbox served as a Kubernetes API: the ``sandbox-k8s`` target kind (``kind``), the process
that serves it (``bridge``) and the backend that maps API objects to the sandbox's processes
(``cluster``). It exists to drill drillbit's Kubernetes driver for real where no cluster can run."""
