# The orders service: seals and opens PHI with patients' data keys; it never forgets a patient
# (no delete, no tombstone writes) and never manages keys (no rotation, no listing).

path "transit/datakey/+/clinical-phi" { capabilities = ["update"] }
path "transit/decrypt/clinical-phi" { capabilities = ["update"] }
path "transit/keys/clinical-phi" { capabilities = ["read"] }
# A patient first seen here gets their data key here (check-and-set: the first writer wins).
path "clinical-keys/data/patients/*" { capabilities = ["create", "read"] }
path "clinical-keys/data/forgotten/*" { capabilities = ["read"] }
path "transit/sign/clinical-audit" { capabilities = ["update"] }
path "transit/verify/clinical-audit" { capabilities = ["update"] }
