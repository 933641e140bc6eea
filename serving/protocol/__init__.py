"""HTTP: the route table's vocabulary, the gateway, access and admission, /v2, the OpenAPI document, the page."""
