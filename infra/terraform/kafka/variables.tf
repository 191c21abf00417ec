variable "acl_file" {
  description = "The Kafka access definition shared with the local stack (users and ACLs)."
  type        = string
  default     = null
}

variable "event_services" {
  description = "Services that keep an event topic clinical.<service>.events.v1."
  type        = list(string)
  default     = ["patient", "orders", "results", "notify"]

  validation {
    condition     = alltrue([for s in var.event_services : can(regex("^[a-z][a-z0-9-]*$", s))])
    error_message = "Service names are lower-case words (patient, orders, ...)."
  }
}

variable "event_partitions" {
  description = "Partitions of each event topic; writer replicas own them by ordinal (the chart's kafka.eventPartitions)."
  type        = number
  default     = 6

  validation {
    condition     = var.event_partitions >= 1 && floor(var.event_partitions) == var.event_partitions
    error_message = "event_partitions must be a whole number of at least 1."
  }
}

variable "access_audit_partitions" {
  description = "Partitions of the access-audit topic (ACCESS_AUDIT_PARTITIONS)."
  type        = number
  default     = 6

  validation {
    condition     = var.access_audit_partitions >= 1
    error_message = "access_audit_partitions must be at least 1."
  }
}

variable "replication_factor" {
  description = "Replicas of every topic."
  type        = number
  default     = 3

  validation {
    condition     = var.replication_factor >= 3
    error_message = "Clinical records need at least 3 replicas."
  }
}

variable "min_insync_replicas" {
  description = "min.insync.replicas of every topic: acknowledged writes survive a broker loss."
  type        = number
  default     = 2

  validation {
    condition     = var.min_insync_replicas >= 2
    error_message = "min_insync_replicas must be at least 2."
  }
}

variable "scram_iterations" {
  description = "SCRAM-SHA-512 iterations of the service users' credentials."
  type        = number
  default     = 8192

  validation {
    condition     = var.scram_iterations >= 4096
    error_message = "scram_iterations must be at least 4096."
  }
}
