// An API call with a DPoP-bound token, made by oauth4webapi itself: a client_credentials
// token with an Ed25519 DPoP key (through the sidecar's token endpoint), then
// protectedResourceRequest() to the API behind the sidecar's resource door, each retried once
// after use_dpop_nonce, as the library's documentation shows.
// Usage: node oauth4webapi_resource.mjs <oauth4webapi build/index.js> <token endpoint> <API URL>
// Prints {"token_type", "status", "body", "jwk", "nonce_retries"} on success.
import { pathToFileURL } from "node:url";

const [modulePath, tokenEndpoint, apiUrl] = process.argv.slice(2);
const oauth = await import(pathToFileURL(modulePath).href);

const as = { issuer: new URL(tokenEndpoint).origin, token_endpoint: tokenEndpoint };
const client = { client_id: "spa" };
const keyPair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
const DPoP = oauth.DPoP(client, keyPair);
const options = { DPoP, [oauth.allowInsecureRequests]: true };  // a loopback test URL
let nonceRetries = 0;

async function retriedOnNonce(call) {
  try {
    return await call();
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    nonceRetries += 1;
    return call();
  }
}

const token = await retriedOnNonce(async () => {
  const response = await oauth.clientCredentialsGrantRequest(
    as, client, oauth.ClientSecretBasic("s3cret"), new URLSearchParams({ scope: "read" }),
    options);
  return oauth.processClientCredentialsResponse(as, client, response);
});
const response = await retriedOnNonce(() => oauth.protectedResourceRequest(
  token.access_token, "GET", new URL(apiUrl), new Headers(), null, options));
const jwk = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
console.log(JSON.stringify({ token_type: token.token_type, status: response.status,
                             body: await response.json(), jwk, nonce_retries: nonceRetries }));
