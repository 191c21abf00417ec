# The audit service: verifies the signed checkpoints of every log. It holds no PHI key.

path "transit/verify/clinical-audit" { capabilities = ["update"] }
path "transit/keys/clinical-audit" { capabilities = ["read"] }
