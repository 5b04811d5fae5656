"""The decision API (README "Calling instead of proxying"): the token decision and the
resource check as JSON calls, with the field names of the token API this product is modelled
on. The same core as the proxy decides; this package only reads the call and writes the
answer."""
