# The patient service: registers patients (creates their data keys) and forgets them
# (tombstone first, then the wrapped key destroyed for good). Default key names of the
# settings base: VAULT_PHI_KEY=clinical-phi, VAULT_AUDIT_SIGNING_KEY=clinical-audit,
# VAULT_KEY_STORE_MOUNT=clinical-keys.

# Per-patient data keys: made and unwrapped by the PHI key-encryption key.
path "transit/datakey/+/clinical-phi" { capabilities = ["update"] }
path "transit/decrypt/clinical-phi" { capabilities = ["update"] }
path "transit/keys/clinical-phi" { capabilities = ["read"] }
# Wrapped data keys (created with check-and-set) and tombstones.
path "clinical-keys/data/patients/*" { capabilities = ["create", "read"] }
path "clinical-keys/data/forgotten/*" { capabilities = ["create", "read"] }
# Crypto-shredding: deleting the metadata destroys every version of a patient's key.
path "clinical-keys/metadata/patients/*" { capabilities = ["delete"] }
# Signed checkpoints of its event log.
path "transit/sign/clinical-audit" { capabilities = ["update"] }
path "transit/verify/clinical-audit" { capabilities = ["update"] }
