variable "region" {
  description = "AWS region of the EKS and MSK clusters."
  type        = string
}

variable "eks_cluster_name" {
  description = "An existing EKS cluster to install the platform on."
  type        = string
}

variable "msk_cluster_arn" {
  description = "An existing MSK cluster with SASL/SCRAM on and allow.everyone.if.no.acl.found=false."
  type        = string
}

variable "kafka_ca_pem" {
  description = "CA of the MSK brokers' certificates (the Amazon trust services roots)."
  type        = string
  sensitive   = true
}

variable "kafka_admin" {
  description = "SCRAM credentials of an MSK super user that manages topics, users and ACLs."
  type        = object({ username = string, password = string })
  sensitive   = true
}

variable "vault_addr" {
  description = "Vault's address, for Terraform and for the pods."
  type        = string
}

variable "mongodb_url" {
  description = "MONGODB_URL of the read-model database (DocumentDB or MongoDB Atlas), credentials included."
  type        = string
  sensitive   = true
}

variable "gateway_signing_keys_pem" {
  description = "The Ed25519 private keys (PEM) of the internal tokens the gateway issues."
  type        = string
  sensitive   = true
}

variable "internal_token_public_keys_pem" {
  description = "The matching public keys (PEM)."
  type        = string
}

variable "oidc_issuer" {
  description = "Issuer URL of the identity provider."
  type        = string
}

variable "image" {
  description = "The platform image pushed to ECR."
  type        = object({ repository = string, tag = optional(string, ""), digest = optional(string, "") })
}

variable "gateway_host" {
  description = "Public host name of the gateway."
  type        = string
}
