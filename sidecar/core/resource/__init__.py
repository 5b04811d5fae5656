"""The resource side (RFC 9449 §7, RFC 8705 §3, RFC 6750 §3): API calls checked against the
binding of the access token they carry. README "The resource side"."""
