# The orders service: seals and opens PHI with patients' data keys; it never forgets a patient
# (no delete, no tombstone writes) and never manages keys (no rotation, no listing).

path "transit/decrypt/clinical-phi" { capabilities = ["update"] }
path "transit/keys/clinical-phi" { capabilities = ["read"] }
# Existing data keys only: the patient service creates a patient's key when it registers them,
# and a command about a patient with no key is refused (no key for a made-up patient id).
path "clinical-keys/data/patients/*" { capabilities = ["read"] }
path "clinical-keys/data/forgotten/*" { capabilities = ["read"] }
path "transit/sign/clinical-audit" { capabilities = ["update"] }
path "transit/verify/clinical-audit" { capabilities = ["update"] }
