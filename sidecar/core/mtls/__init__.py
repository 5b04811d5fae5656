"""The client certificate a front proxy forwards in a header, for RFC 8705 mTLS.

The proxy in front of the sidecar terminates TLS and passes the client's certificate on in a
header; every proxy writes it its own way (`settings.CERT_FORMATS`). This module turns that
header into a `ClientCertificate`: the leaf DER, the further certificates the client
presented, and the RFC 8705 §3.1 `x5t#S256` thumbprint. It checks that each certificate
*is* an X.509 certificate, never that it is trusted (that is a later step's job).

`parse_client_certificate` never raises: a header that does not parse is `invalid_request`
(malformed input is a 4xx, never a 500). No header, or an empty one, is `None`: the proxy
had no client certificate to forward. Only headers from trusted proxies reach this module
(README step 2: certificate headers count only from `trust.trusted_proxies`).

The formats, as each proxy writes them:

- `nginx`: `$ssl_client_escaped_cert`, the PEM percent-encoded by
  `ngx_escape_uri(..., NGX_ESCAPE_URI_COMPONENT)` (nginx src/event/ngx_event_openssl.c,
  `ngx_ssl_get_escaped_certificate`; https://nginx.org/en/docs/http/ngx_http_ssl_module.html).
- `envoy-xfcc`: `x-forwarded-client-cert`
  (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#x-forwarded-client-cert).
- `traefik`: `X-Forwarded-Tls-Client-Cert` of the passTLSClientCert middleware with `pem: true`
  (https://doc.traefik.io/traefik/middlewares/http/passtlsclientcert/).
- `aws-alb`: `X-Amzn-Mtls-Clientcert` / `X-Amzn-Mtls-Clientcert-Leaf`
  (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/mutual-authentication.html).
- `rfc9440`: `Client-Cert` and `Client-Cert-Chain` (RFC 9440 §2), as Cloudflare sends them.
- `pem`: plain PEM, one or several blocks, its line breaks possibly turned into spaces.
- `der-base64`: base64 DER, several separated by ",".

The package: `parse` (the entry point, the cache), `certificate` (the result), `formats` (one
decoder per proxy), `encodings` (percent-encoding, base64, PEM, the bounds).
"""
