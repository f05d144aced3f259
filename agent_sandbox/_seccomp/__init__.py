"""The syscall filter: rules as data (``rules``), their compilation with libseccomp
(``compile``, only on a cache miss) and the cached program (``cache``). Imports only the
base modules."""
