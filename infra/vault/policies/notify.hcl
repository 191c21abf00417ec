# The notify service: opens clinical events to render notifications, seals webhook secrets
# with its own key; it never forgets a patient and never manages the PHI keys.

path "transit/decrypt/clinical-phi" { capabilities = ["update"] }
path "transit/keys/clinical-phi" { capabilities = ["read"] }
# Existing data keys only: the patient service creates them.
path "clinical-keys/data/patients/*" { capabilities = ["read"] }
path "clinical-keys/data/forgotten/*" { capabilities = ["read"] }
path "transit/sign/clinical-audit" { capabilities = ["update"] }
path "transit/verify/clinical-audit" { capabilities = ["update"] }
# Webhook secrets (NOTIFY_SECRET_KEY, "clinical-notify"): sealed at rest, opened to sign deliveries.
path "transit/keys/clinical-notify" { capabilities = ["create", "read", "update"] }
path "transit/encrypt/clinical-notify" { capabilities = ["update"] }
path "transit/decrypt/clinical-notify" { capabilities = ["update"] }
