output "vault_unseal_kms_key_arn" {
  description = "The KMS key of Vault's awskms seal."
  value       = aws_kms_key.vault_unseal.arn
}

output "backup_bucket" {
  description = "The S3 bucket for Vault snapshots and MongoDB dumps."
  value       = aws_s3_bucket.backups.bucket
}

output "gateway_service" {
  description = "The gateway's in-cluster address."
  value       = module.platform.gateway_service
}
