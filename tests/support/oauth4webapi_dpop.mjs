// A client_credentials request with an Ed25519 DPoP key, made by oauth4webapi itself, the
// way a browser or Node application makes it; retried once after use_dpop_nonce, as the
// library's documentation shows.
// Usage: node oauth4webapi_dpop.mjs <path to oauth4webapi's build/index.js> <token endpoint>
// Prints {"token_type": ..., "jwk": <the DPoP public key>} on success.
import { pathToFileURL } from "node:url";

const [modulePath, tokenEndpoint] = process.argv.slice(2);
const oauth = await import(pathToFileURL(modulePath).href);

const as = { issuer: new URL(tokenEndpoint).origin, token_endpoint: tokenEndpoint };
const client = { client_id: "spa" };
const keyPair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
const DPoP = oauth.DPoP(client, keyPair);
const options = { DPoP, [oauth.allowInsecureRequests]: true };  // a loopback test URL

async function obtain() {
  const response = await oauth.clientCredentialsGrantRequest(
    as, client, oauth.ClientSecretBasic("s3cret"), new URLSearchParams({ scope: "read" }),
    options);
  return oauth.processClientCredentialsResponse(as, client, response);
}

let result;
try {
  result = await obtain();
} catch (error) {
  if (!oauth.isDPoPNonceError(error)) throw error;
  result = await obtain();
}
const jwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
console.log(JSON.stringify({ token_type: result.token_type, jwk }));
