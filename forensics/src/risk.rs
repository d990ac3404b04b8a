//! The catalogue of high-risk operations `ctguard trace` reports for a key.
//!
//! Each entry names the service (the first label of `eventSource`), the API names, a category
//! and why a responder cares. The list is curated from what credential thieves do after the
//! fact, as catalogued by Stratus Red Team techniques and the Alibaba Cloud AccessKey
//! traceability practice: mint more credentials or persistence, read secrets, blind the
//! defenders, share data out, leave the organisation, run commands on instances. It favours
//! recall for a responder reading one key's history; it is not an alerting rule set, and a
//! listed call is not proof of compromise (a CI role legitimately calls `GetSecretValue`).
//!
//! Lambda's versioned event names (`UpdateFunctionCode20150331v2`) are matched without their
//! date suffix. Alibaba Cloud services appear under their ActionTrail service label (`ram`,
//! `actiontrail`, `ecs`, `kms`, `sts`).

use serde::Serialize;

/// What kind of damage an operation can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// New keys, passwords, sessions or trust: the attacker outlives the stolen credential.
    CredentialMinting,
    /// Policy and trust changes that grant more than the principal had.
    PrivilegeEscalation,
    /// Reading secrets, decrypted parameters, KMS plaintext, instance passwords or user data.
    SecretAccess,
    /// Stopping or reducing logging and detection.
    DefenseEvasion,
    /// Making snapshots, images or buckets readable by others; opening the network.
    Exfiltration,
    /// Leaving or dismantling the organisation, escaping its guardrails.
    OrganizationDeparture,
    /// Running code or commands on instances and functions.
    Execution,
    /// Expensive resources for the attacker's benefit (mining, model abuse).
    ResourceHijacking,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::CredentialMinting => "credential-minting",
            Category::PrivilegeEscalation => "privilege-escalation",
            Category::SecretAccess => "secret-access",
            Category::DefenseEvasion => "defense-evasion",
            Category::Exfiltration => "exfiltration",
            Category::OrganizationDeparture => "organization-departure",
            Category::Execution => "execution",
            Category::ResourceHijacking => "resource-hijacking",
        }
    }
}

/// One catalogue entry.
#[derive(Debug)]
pub struct Entry {
    pub service: &'static str,
    pub names: &'static [&'static str],
    pub category: Category,
    pub why: &'static str,
}

use Category::*;

/// The catalogue. Keep entries grouped by category; the test below checks there are no
/// duplicate (service, name) pairs.
pub const CATALOGUE: &[Entry] = &[
    // --- credential minting and persistence ---
    Entry {
        service: "iam",
        names: &[
            "CreateAccessKey",
            "CreateLoginProfile",
            "UpdateLoginProfile",
            "CreateServiceSpecificCredential",
            "UploadSSHPublicKey",
            "UploadSigningCertificate",
            "CreateVirtualMFADevice",
            "EnableMFADevice",
            "DeactivateMFADevice",
        ],
        category: CredentialMinting,
        why: "creates a credential or sign-in that outlives the stolen key",
    },
    Entry {
        service: "iam",
        names: &["CreateUser", "CreateRole", "CreateOpenIDConnectProvider", "CreateSAMLProvider", "UpdateSAMLProvider"],
        category: CredentialMinting,
        why: "creates a principal or identity provider an attacker can come back through",
    },
    Entry {
        service: "sts",
        names: &["GetFederationToken", "GetSessionToken"],
        category: CredentialMinting,
        why: "mints temporary credentials from a long-term key (survive the key's deactivation)",
    },
    Entry {
        service: "sts",
        names: &["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"],
        category: CredentialMinting,
        why: "role chaining: new credentials, possibly in another account",
    },
    Entry {
        service: "rolesanywhere",
        names: &["CreateTrustAnchor", "CreateProfile", "UpdateTrustAnchor"],
        category: CredentialMinting,
        why: "IAM Roles Anywhere trust: certificates signed by the attacker's CA get credentials",
    },
    Entry {
        service: "ec2",
        names: &["CreateKeyPair", "ImportKeyPair"],
        category: CredentialMinting,
        why: "an SSH key pair for new instances",
    },
    Entry {
        service: "ec2-instance-connect",
        names: &["SendSSHPublicKey", "SendSerialConsoleSSHPublicKey"],
        category: Execution,
        why: "pushes an SSH key to a running instance (interactive access)",
    },
    Entry {
        service: "sso",
        names: &["CreateAccountAssignment", "CreatePermissionSet"],
        category: CredentialMinting,
        why: "grants IAM Identity Center access",
    },
    // --- privilege escalation ---
    Entry {
        service: "iam",
        names: &[
            "AttachUserPolicy",
            "AttachRolePolicy",
            "AttachGroupPolicy",
            "PutUserPolicy",
            "PutRolePolicy",
            "PutGroupPolicy",
            "CreatePolicyVersion",
            "SetDefaultPolicyVersion",
            "AddUserToGroup",
            "UpdateAssumeRolePolicy",
            "PutUserPermissionsBoundary",
            "DeleteUserPermissionsBoundary",
            "DeleteRolePermissionsBoundary",
            "PassRole",
        ],
        category: PrivilegeEscalation,
        why: "changes what a principal may do or who may assume a role",
    },
    Entry {
        service: "lambda",
        names: &["AddPermission", "CreateFunctionUrlConfig"],
        category: PrivilegeEscalation,
        why: "opens a function to other principals or the internet",
    },
    // --- secret access ---
    Entry {
        service: "secretsmanager",
        names: &["GetSecretValue", "BatchGetSecretValue"],
        category: SecretAccess,
        why: "reads secrets",
    },
    Entry {
        service: "ssm",
        names: &["GetParameter", "GetParameters", "GetParametersByPath", "GetParameterHistory"],
        category: SecretAccess,
        why: "reads parameters (SecureString values when decrypted)",
    },
    Entry {
        service: "kms",
        names: &["Decrypt", "GenerateDataKey", "ReEncrypt", "CreateGrant", "PutKeyPolicy"],
        category: SecretAccess,
        why: "uses or opens KMS keys that protect data",
    },
    Entry {
        service: "ec2",
        names: &["GetPasswordData"],
        category: SecretAccess,
        why: "retrieves Windows administrator passwords",
    },
    Entry {
        service: "ec2",
        names: &["DescribeInstanceAttribute"],
        category: SecretAccess,
        why: "reads instance user data, where secrets are often left",
    },
    Entry {
        service: "s3",
        names: &["GetObject"],
        category: SecretAccess,
        why: "reads object contents (data access by the key)",
    },
    Entry {
        service: "ecr",
        names: &["GetDownloadUrlForLayer", "BatchGetImage"],
        category: SecretAccess,
        why: "pulls container image layers (code and embedded secrets)",
    },
    Entry {
        service: "lambda",
        names: &["GetFunction"],
        category: SecretAccess,
        why: "downloads function code and environment variables",
    },
    // --- defense evasion ---
    Entry {
        service: "cloudtrail",
        names: &[
            "StopLogging",
            "DeleteTrail",
            "UpdateTrail",
            "PutEventSelectors",
            "PutInsightSelectors",
            "DeleteEventDataStore",
            "StopEventDataStoreIngestion",
        ],
        category: DefenseEvasion,
        why: "stops or narrows CloudTrail logging",
    },
    Entry {
        service: "guardduty",
        names: &[
            "DeleteDetector",
            "UpdateDetector",
            "DisassociateFromMasterAccount",
            "DisassociateFromAdministratorAccount",
            "DeleteMembers",
            "DisassociateMembers",
            "StopMonitoringMembers",
            "CreateIPSet",
            "UpdateIPSet",
            "CreateFilter",
            "UpdateFilter",
            "DeletePublishingDestination",
        ],
        category: DefenseEvasion,
        why: "disables GuardDuty or suppresses its findings",
    },
    Entry { service: "ec2", names: &["DeleteFlowLogs"], category: DefenseEvasion, why: "removes VPC flow logs" },
    Entry {
        service: "route53resolver",
        names: &["DeleteResolverQueryLogConfig", "DisassociateResolverQueryLogConfig"],
        category: DefenseEvasion,
        why: "removes DNS query logging",
    },
    Entry {
        service: "config",
        names: &[
            "StopConfigurationRecorder",
            "DeleteConfigurationRecorder",
            "DeleteDeliveryChannel",
            "DeleteConfigRule",
        ],
        category: DefenseEvasion,
        why: "stops AWS Config recording",
    },
    Entry {
        service: "securityhub",
        names: &["DisableSecurityHub", "BatchUpdateFindings", "DeleteInsight"],
        category: DefenseEvasion,
        why: "disables Security Hub or suppresses findings",
    },
    Entry {
        service: "access-analyzer",
        names: &["DeleteAnalyzer"],
        category: DefenseEvasion,
        why: "removes IAM Access Analyzer",
    },
    Entry {
        service: "logs",
        names: &["DeleteLogGroup", "DeleteLogStream", "PutRetentionPolicy"],
        category: DefenseEvasion,
        why: "deletes or shortens CloudWatch logs",
    },
    Entry {
        service: "actiontrail",
        names: &["StopLogging", "DeleteTrail", "UpdateTrail"],
        category: DefenseEvasion,
        why: "stops or narrows ActionTrail logging (Alibaba Cloud)",
    },
    // --- exfiltration and exposure ---
    Entry {
        service: "ec2",
        names: &["ModifySnapshotAttribute", "ModifyImageAttribute", "ModifyFpgaImageAttribute"],
        category: Exfiltration,
        why: "shares a snapshot or AMI with another account or the public",
    },
    Entry {
        service: "rds",
        names: &["ModifyDBSnapshotAttribute", "ModifyDBClusterSnapshotAttribute"],
        category: Exfiltration,
        why: "shares a database snapshot with another account or the public",
    },
    Entry {
        service: "ec2",
        names: &["AuthorizeSecurityGroupIngress", "CreateTrafficMirrorSession"],
        category: Exfiltration,
        why: "opens inbound access or mirrors traffic",
    },
    Entry {
        service: "s3",
        names: &[
            "PutBucketPolicy",
            "PutBucketAcl",
            "PutObjectAcl",
            "DeletePublicAccessBlock",
            "PutBucketPublicAccessBlock",
            "PutBucketReplication",
        ],
        category: Exfiltration,
        why: "makes data readable by others or copies it elsewhere",
    },
    Entry {
        service: "ecr",
        names: &["SetRepositoryPolicy"],
        category: Exfiltration,
        why: "shares a container repository",
    },
    // --- organisation departure ---
    Entry {
        service: "organizations",
        names: &[
            "LeaveOrganization",
            "RemoveAccountFromOrganization",
            "DeleteOrganization",
            "DetachPolicy",
            "DisablePolicyType",
            "DeletePolicy",
        ],
        category: OrganizationDeparture,
        why: "escapes the organisation and its service control policies",
    },
    Entry {
        service: "account",
        names: &["PutAlternateContact", "DeleteAlternateContact"],
        category: OrganizationDeparture,
        why: "redirects account notifications",
    },
    // --- execution ---
    Entry {
        service: "ssm",
        names: &["SendCommand", "StartSession", "StartAutomationExecution", "CreateAssociation"],
        category: Execution,
        why: "runs commands on instances",
    },
    Entry {
        service: "ec2",
        names: &["ModifyInstanceAttribute", "EnableSerialConsoleAccess"],
        category: Execution,
        why: "changes user data (code run at boot) or opens the serial console",
    },
    Entry {
        service: "lambda",
        names: &[
            "UpdateFunctionCode",
            "UpdateFunctionConfiguration",
            "CreateFunction",
            "PublishLayerVersion",
            "CreateEventSourceMapping",
        ],
        category: Execution,
        why: "deploys or alters code that runs with the function's role",
    },
    Entry {
        service: "ecs",
        names: &["ExecuteCommand", "RegisterTaskDefinition", "RunTask"],
        category: Execution,
        why: "runs containers or commands in them",
    },
    Entry {
        service: "ec2",
        names: &["RunInstances"],
        category: ResourceHijacking,
        why: "launches instances (mining, or an attacker foothold with a chosen role)",
    },
    Entry {
        service: "bedrock",
        names: &[
            "InvokeModel",
            "InvokeModelWithResponseStream",
            "PutFoundationModelEntitlement",
            "PutUseCaseForModelAccess",
            "CreateFoundationModelAgreement",
        ],
        category: ResourceHijacking,
        why: "uses or unlocks generative models at the account's expense",
    },
    Entry {
        service: "ecs",
        names: &["RunInstances"],
        category: ResourceHijacking,
        why: "launches ECS instances at the account's expense (Alibaba Cloud)",
    },
    Entry {
        service: "ecs",
        names: &["RunCommand", "InvokeCommand"],
        category: Execution,
        why: "runs commands on ECS instances (Alibaba Cloud Cloud Assistant)",
    },
    Entry {
        service: "ram",
        names: &["CreateAccessKey", "CreateUser", "CreateLoginProfile", "UpdateLoginProfile"],
        category: CredentialMinting,
        why: "creates a RAM credential or sign-in that outlives the stolen key (Alibaba Cloud)",
    },
    Entry {
        service: "ram",
        names: &[
            "AttachPolicyToUser",
            "AttachPolicyToRole",
            "AttachPolicyToGroup",
            "UpdateRole",
            "CreatePolicyVersion",
        ],
        category: PrivilegeEscalation,
        why: "grants RAM permissions (Alibaba Cloud)",
    },
];

/// The service label of an `eventSource`: `iam.amazonaws.com` → `iam`;
/// `ecs-cn-hangzhou.aliyuncs.com` → `ecs` (Alibaba endpoints carry the region after a dash).
pub fn service_of(event_source: &str) -> &str {
    let first = event_source.split('.').next().unwrap_or(event_source);
    if event_source.ends_with(".aliyuncs.com") {
        return first.split('-').next().unwrap_or(first);
    }
    first
}

/// An event name without Lambda's API-version suffix (`UpdateFunctionCode20150331v2`).
pub fn base_name(name: &str) -> &str {
    let b = name.as_bytes();
    // Find a run of 8 digits (a date) near the end, optionally followed by `v<digits>`.
    let mut end = b.len();
    if let Some(v) = name.rfind('v') {
        if v + 1 < b.len() && b[v + 1..].iter().all(u8::is_ascii_digit) {
            end = v;
        }
    }
    if end >= 8 && b[end - 8..end].iter().all(u8::is_ascii_digit) && end > 8 {
        return &name[..end - 8];
    }
    name
}

/// The catalogue entry an API call falls under, if any.
pub fn lookup(event_source: &str, event_name: &str) -> Option<&'static Entry> {
    let service = service_of(event_source);
    let name = base_name(event_name);
    CATALOGUE.iter().find(|e| e.service == service && e.names.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for e in CATALOGUE {
            for n in e.names {
                assert!(seen.insert((e.service, *n)), "duplicate {}:{n}", e.service);
            }
        }
    }

    #[test]
    fn names_and_services() {
        assert_eq!(base_name("UpdateFunctionCode20150331v2"), "UpdateFunctionCode");
        assert_eq!(base_name("AddPermission20150331v2"), "AddPermission");
        assert_eq!(base_name("GetFunction20150331"), "GetFunction");
        assert_eq!(base_name("ListBuckets"), "ListBuckets");
        assert_eq!(base_name("12345678"), "12345678");
        assert_eq!(service_of("ec2-instance-connect.amazonaws.com"), "ec2-instance-connect");
        assert_eq!(service_of("ecs-cn-hangzhou.aliyuncs.com"), "ecs");
        assert_eq!(service_of("ram.aliyuncs.com"), "ram");
        assert_eq!(service_of(""), "");
    }

    #[test]
    fn lookups() {
        let cat = |s: &str, n: &str| lookup(s, n).map(|e| e.category);
        assert_eq!(cat("iam.amazonaws.com", "CreateAccessKey"), Some(CredentialMinting));
        assert_eq!(cat("lambda.amazonaws.com", "UpdateFunctionCode20150331v2"), Some(Execution));
        assert_eq!(cat("cloudtrail.amazonaws.com", "StopLogging"), Some(DefenseEvasion));
        assert_eq!(cat("organizations.amazonaws.com", "LeaveOrganization"), Some(OrganizationDeparture));
        assert_eq!(cat("ram.aliyuncs.com", "CreateAccessKey"), Some(CredentialMinting));
        assert_eq!(cat("s3.amazonaws.com", "ListBuckets"), None);
        assert_eq!(cat("iam.amazonaws.com", "ListUsers"), None);
    }
}
