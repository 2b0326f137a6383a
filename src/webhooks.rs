//! Screen-pop webhooks: the event an agent's desktop gets when a call is offered and
//! when it connects, posted as JSON to configured URLs (a CRM). Each post carries
//! `X-Omnigate-Timestamp` (Unix seconds) and `X-Omnigate-Signature: sha256=<hex>`, the
//! HMAC-SHA256 (RFC 2104) of `<timestamp>.<body>` under the webhook's secret, so the
//! receiver can check origin and freshness. A post that fails (connection error,
//! timeout, non-2xx) is retried after 1 s, 2 s, 4 s... up to `attempts` times; posts
//! run in their own tasks and never hold up a call.

use crate::config::WebhookConfig;
use std::time::Duration;

/// The signature header's value for `body` sent at `timestamp`: the same scheme the
/// open channel API checks on what connectors send us.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    crate::channels::signature::sign_open(secret, timestamp, body)
}

#[derive(Clone, Default)]
pub struct Webhooks {
    hooks: std::sync::Arc<Vec<WebhookConfig>>,
    /// Where each receiver that was sent a customer's record is noted (to be told of
    /// the customer's erasure).
    store: Option<crate::store::Store>,
}

impl Webhooks {
    pub fn new(hooks: Vec<WebhookConfig>) -> Webhooks {
        Webhooks {
            hooks: std::sync::Arc::new(hooks),
            store: None,
        }
    }

    /// Notes in `store` which receiver got which customer's record.
    pub fn with_store(mut self, store: crate::store::Store) -> Webhooks {
        self.store = Some(store);
        self
    }

    pub fn wants(&self, event: &str) -> bool {
        self.hooks
            .iter()
            .any(|w| w.events.iter().any(|e| e == event))
    }

    /// Posts `payload` (with `"event"` set) to every webhook that wants `event`. Once
    /// delivered, it is noted against the customer of its record
    /// (`customer.customer.id`) and its `interaction`: an unverified chat's or an
    /// unknown caller's screen-pop counts as their data once they are known.
    pub fn post(&self, event: &'static str, payload: serde_json::Value) {
        let customer = payload["customer"]["customer"]["id"].as_i64();
        let interaction = payload["interaction"].as_str().map(str::to_string);
        let hooks: Vec<&WebhookConfig> = self
            .hooks
            .iter()
            .filter(|w| w.events.iter().any(|e| e == event))
            .collect();
        self.send(&hooks, event, payload, (customer, interaction));
    }

    /// Tells the receivers at `urls` (those that were sent the customer's data) that
    /// the customer was erased: `customer.erased` with the customer's id, the
    /// erasure's, and the interactions whose screen-pops that receiver got (`pops`:
    /// (receiver, interaction)), whatever events they take.
    pub fn post_erased(
        &self,
        urls: &[String],
        pops: &[(String, String)],
        customer: i64,
        erasure: i64,
    ) {
        for w in self.hooks.iter().filter(|w| urls.contains(&w.url)) {
            let interactions: Vec<&str> = pops
                .iter()
                .filter(|(u, _)| *u == w.url)
                .map(|(_, i)| i.as_str())
                .collect();
            let payload = serde_json::json!({
                "customer": customer,
                "erasure": erasure,
                "interactions": interactions,
                "at": crate::clock::unix_millis() as i64,
            });
            self.send(&[w], "customer.erased", payload, (None, None));
        }
    }

    /// Posts to `hooks`; `noted` is the (customer, interaction) a delivery is noted
    /// against.
    fn send(
        &self,
        hooks: &[&WebhookConfig],
        event: &'static str,
        mut payload: serde_json::Value,
        noted: (Option<i64>, Option<String>),
    ) {
        payload["event"] = event.into();
        let body = bytes::Bytes::from(payload.to_string());
        for w in hooks {
            let (url, secret, attempts) = (w.url.clone(), w.secret.clone(), w.attempts);
            let body = body.clone();
            let store = self.store.clone();
            let (customer, interaction) = noted.clone();
            actix_rt::spawn(async move {
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .finish();
                let mut wait = Duration::from_secs(1);
                for attempt in 1..=attempts {
                    let ts = crate::clock::unix_secs();
                    let sent = client
                        .post(&url)
                        .insert_header(("Content-Type", "application/json"))
                        .insert_header(("X-Omnigate-Event", event))
                        .insert_header(("X-Omnigate-Timestamp", ts.to_string()))
                        .insert_header(("X-Omnigate-Signature", signature(&secret, ts, &body)))
                        .send_body(body.clone())
                        .await;
                    let why = match sent {
                        Ok(r) if r.status().is_success() => {
                            tracing::debug!(%url, event, attempt, "webhook delivered");
                            let noted = customer.is_some() || interaction.is_some();
                            if let (Some(store), true) = (store, noted) {
                                if let Err(e) = store
                                    .webhook_delivered(&url, customer, interaction.as_deref())
                                    .await
                                {
                                    tracing::warn!(%url, error = %e, "a webhook delivery was not noted");
                                }
                            }
                            return;
                        }
                        Ok(r) => format!("HTTP {}", r.status().as_u16()),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(%url, event, attempt, attempts, error = %why, "webhook failed");
                    if attempt < attempts {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::signature::{hex, hmac_sha256};

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(
            signature("k", 1, b"{}"),
            format!("sha256={}", hex(&hmac_sha256(b"k", b"1.{}")))
        );
    }
}
