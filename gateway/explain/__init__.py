"""Why a signed URL is refused (``gatewayctl explain``, ``POST /v1/explain``): the reasons in words
(``reasons``) and the inquiry against the live state and the audit log (``inquiry``)."""
