// Run by start-proxy beside a freshly started proxy, which has no routes: ask the hub to put
// every route back (POST /hub/api/proxy), retrying until the hub answers. The proxy's own API
// token is the hub's "proxy-sync" service token (stacks/jupyterhub_config.py): whoever holds it
// controls every route of the proxy already, so the hub grants it nothing more than that.
const url = process.env.JOVIAL_HUB_PROXY_SYNC_URL || 'http://hub:8081/hub/api/proxy';
const token = process.env.CONFIGPROXY_AUTH_TOKEN;
const deadline = Date.now() + 5 * 60 * 1000;

async function attempt() {
  try {
    const reply = await fetch(url, { method: 'POST', headers: { Authorization: `token ${token}` } });
    if (reply.ok) {
      console.log('sync-routes: the hub has put its routes back into this proxy');
      return;
    }
    console.log(`sync-routes: the hub answered ${reply.status}; retrying`);
  } catch (error) {
    // the hub or this proxy's API is not listening yet
  }
  if (Date.now() < deadline) {
    setTimeout(attempt, 1000);
  } else {
    console.error('sync-routes: the hub did not answer for 5 minutes; it restores routes at its next check');
  }
}

// The first attempt waits out the hub's DNS cache (aiohttp keeps answers 10 s): asked sooner, the
// hub would still call the old proxy's address and wait 30 s for its connect to time out.
setTimeout(attempt, 11000);
