# A cloud example, not required by anything: the platform on an existing EKS cluster with MSK
# (SASL/SCRAM over TLS) as Kafka, a KMS key for Vault's auto-unseal, and an S3 bucket for
# backups (Vault snapshots, MongoDB dumps). Vault itself (its Helm chart, seal "awskms" with the
# key below) is installed beforehand; docs/deploy.md walks through it.
provider "aws" {
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.eks_cluster_name
}

data "aws_eks_cluster_auth" "this" {
  name = var.eks_cluster_name
}

data "aws_msk_bootstrap_brokers" "this" {
  cluster_arn = var.msk_cluster_arn
}

provider "kubernetes" {
  host                   = data.aws_eks_cluster.this.endpoint
  cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
  token                  = data.aws_eks_cluster_auth.this.token
}

provider "helm" {
  kubernetes = {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}

provider "vault" {
  address = var.vault_addr
}

provider "kafka" {
  bootstrap_servers = split(",", data.aws_msk_bootstrap_brokers.this.bootstrap_brokers_sasl_scram)
  tls_enabled       = true
  ca_cert           = var.kafka_ca_pem
  sasl_mechanism    = "scram-sha512"
  sasl_username     = var.kafka_admin.username
  sasl_password     = var.kafka_admin.password
}

resource "aws_kms_key" "vault_unseal" {
  description             = "clinical-platform: Vault auto-unseal"
  enable_key_rotation     = true
  deletion_window_in_days = 30
}

resource "aws_s3_bucket" "backups" {
  bucket_prefix = "clinical-platform-backups-"
}

resource "aws_s3_bucket_versioning" "backups" {
  bucket = aws_s3_bucket.backups.id
  versioning_configuration {
    status = "Enabled"
  }
}

# Old snapshot versions go after 90 days: a forgotten patient's key must not outlive that.
resource "aws_s3_bucket_lifecycle_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.vault_unseal.arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "backups" {
  bucket                  = aws_s3_bucket.backups.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

module "vault" {
  source = "../../vault"

  kubernetes_host        = data.aws_eks_cluster.this.endpoint
  kubernetes_ca_cert     = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
  namespace              = "clinical"
  service_account_prefix = "clinical-clinical-platform-"
}

module "kafka" {
  source = "../../kafka"

  event_partitions = 12
}

module "platform" {
  source = "../../platform"

  release_name            = "clinical"
  namespace               = "clinical"
  image                   = var.image
  kafka_bootstrap_servers = data.aws_msk_bootstrap_brokers.this.bootstrap_brokers_sasl_scram
  kafka_ca_pem            = var.kafka_ca_pem
  kafka_credentials       = module.kafka.credentials
  kafka_event_partitions  = 12
  mongodb_url             = var.mongodb_url
  vault_addr              = var.vault_addr
  vault = {
    role_prefix       = module.vault.role_prefix
    transit_mount     = module.vault.transit_mount
    phi_key           = module.vault.phi_key
    audit_signing_key = module.vault.audit_signing_key
    key_store_mount   = module.vault.key_store_mount
  }
  gateway_signing_keys_pem       = var.gateway_signing_keys_pem
  internal_token_public_keys_pem = var.internal_token_public_keys_pem
  oidc_issuer                    = var.oidc_issuer
  gateway_host                   = var.gateway_host
}
