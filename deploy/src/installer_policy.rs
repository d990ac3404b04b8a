//! The installing principal's own least-privilege IAM policy (`ctguard template
//! installer-policy`): the actions behind every AWS call `install`, `status`, `verify` and
//! `uninstall` make, with and without auto-deployment, one statement per purpose.
//!
//! The list is held to the code by an end-to-end test: every operation the runs make is
//! recorded (`ctguard_aws::OperationLog`), mapped to its IAM actions with [`actions_for`], and
//! the test fails when one is missing here or when an action here was never used.
//!
//! CloudFormation creates the stacks' resources with the caller's credentials (ctguard passes no
//! service role), so the principal also needs the resource actions of the templates; those are
//! the last statement, [`TEMPLATE_RESOURCES`], read from the templates rather than recorded (the
//! emulator evaluates no IAM).

/// One statement: its purpose (`Sid`) and actions.
#[derive(Debug, Clone, Copy)]
pub struct Statement {
    pub sid: &'static str,
    pub actions: &'static [&'static str],
}

/// ctguard's own calls, by purpose.
pub const STATEMENTS: &[Statement] = &[
    Statement {
        sid: "IdentityAndOrganization",
        actions: &[
            "sts:GetCallerIdentity",
            "sts:AssumeRole",
            "organizations:DescribeOrganization",
            "organizations:ListRoots",
            "organizations:ListAccounts",
            "organizations:ListAWSServiceAccessForOrganization",
            "iam:GetRole",
            "account:ListRegions",
        ],
    },
    Statement {
        sid: "TrailCheck",
        actions: &["cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"],
    },
    Statement {
        sid: "Stacks",
        actions: &[
            "cloudformation:DescribeStacks",
            "cloudformation:CreateStack",
            "cloudformation:UpdateStack",
            "cloudformation:DeleteStack",
            "cloudformation:DescribeStackResource",
        ],
    },
    Statement {
        sid: "ArtifactsBuckets",
        actions: &[
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "s3:ListBucketVersions",
            "s3:GetBucketTagging",
            "s3:DeleteObject",
            "s3:DeleteObjectVersion",
        ],
    },
    Statement {
        sid: "AutoDeployStackSets",
        actions: &[
            "cloudformation:ListStackSets",
            "cloudformation:DescribeStackSet",
            "cloudformation:CreateStackSet",
            "cloudformation:UpdateStackSet",
            "cloudformation:DeleteStackSet",
            "cloudformation:ListStackInstances",
            "cloudformation:CreateStackInstances",
            "cloudformation:DeleteStackInstances",
            "cloudformation:ListStackSetOperations",
            "cloudformation:DescribeStackSetOperation",
            "cloudformation:ListStackSetOperationResults",
            "organizations:ListDelegatedAdministrators",
            "organizations:ListOrganizationalUnitsForParent",
            "organizations:ListAccountsForParent",
        ],
    },
    Statement {
        // status's health (with its CloudWatch metrics and alarms, and `--cost`) and
        // uninstall's check of what is left, in each target.
        sid: "HealthAndLeftovers",
        actions: &[
            "cloudwatch:GetMetricData",
            "cloudwatch:DescribeAlarms",
            "events:DescribeRule",
            "sqs:GetQueueUrl",
            "sqs:GetQueueAttributes",
            "lambda:GetFunction",
            "dynamodb:DescribeTable",
            "sns:GetTopicAttributes",
        ],
    },
    Statement {
        // verify: a synthetic event through the pipeline, observed on a temporary queue, then
        // everything it made removed.
        sid: "Verify",
        actions: &[
            "lambda:GetFunctionConfiguration",
            "lambda:GetPolicy",
            "lambda:InvokeFunction",
            "events:TestEventPattern",
            "events:PutEvents",
            "dynamodb:DescribeTimeToLive",
            "dynamodb:GetItem",
            "dynamodb:DeleteItem",
            "sqs:CreateQueue",
            "sqs:TagQueue",
            "sqs:ReceiveMessage",
            "sqs:DeleteQueue",
            "sns:Subscribe",
            "sns:Unsubscribe",
        ],
    },
];

/// What CloudFormation does with the caller's credentials to create, update and delete the
/// templates' resources (not ctguard's own calls: not recorded, see the module doc).
pub const TEMPLATE_RESOURCES: Statement = Statement {
    sid: "CloudFormationCreatesTheTemplatesResources",
    actions: &[
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutEncryptionConfiguration",
        "s3:PutBucketPublicAccessBlock",
        "s3:PutBucketOwnershipControls",
        "s3:PutBucketVersioning",
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketTagging",
        "dynamodb:CreateTable",
        "dynamodb:DeleteTable",
        "dynamodb:DescribeTable",
        "dynamodb:UpdateTable",
        "dynamodb:UpdateTimeToLive",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:UpdateContinuousBackups",
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:TagResource",
        "dynamodb:UntagResource",
        "dynamodb:PutResourcePolicy",
        "dynamodb:GetResourcePolicy",
        "dynamodb:DeleteResourcePolicy",
        "sns:CreateTopic",
        "sns:DeleteTopic",
        "sns:SetTopicAttributes",
        "sns:GetTopicAttributes",
        "sns:Subscribe",
        "sns:Unsubscribe",
        "sns:TagResource",
        "sns:UntagResource",
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:GetRolePolicy",
        "iam:TagRole",
        "iam:UntagRole",
        "iam:PassRole",
        "lambda:CreateFunction",
        "lambda:DeleteFunction",
        "lambda:GetFunction",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:AddPermission",
        "lambda:RemovePermission",
        "lambda:PutFunctionEventInvokeConfig",
        "lambda:DeleteFunctionEventInvokeConfig",
        "lambda:TagResource",
        "lambda:UntagResource",
        "events:PutRule",
        "events:DeleteRule",
        "events:PutTargets",
        "events:RemoveTargets",
        "events:DescribeRule",
        "events:TagResource",
        "events:UntagResource",
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "sqs:SetQueueAttributes",
        "sqs:GetQueueAttributes",
        "sqs:TagQueue",
        "sqs:UntagQueue",
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
        "logs:TagResource",
        "logs:UntagResource",
        "logs:DescribeLogGroups",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:TagResource",
        "cloudwatch:UntagResource",
    ],
};

/// The IAM actions an SDK operation needs (`service` and `operation` as the SDK names them,
/// which is what `ctguard_aws::OperationLog` records). Most are `prefix:Operation`; S3's and
/// Lambda's REST operations are named differently in IAM.
pub fn actions_for(service: &str, operation: &str) -> Vec<String> {
    let prefix = match service {
        "EventBridge" => "events",
        other => return default_action(other, operation),
    };
    vec![format!("{prefix}:{operation}")]
}

fn default_action(service: &str, operation: &str) -> Vec<String> {
    let prefix = service.to_ascii_lowercase();
    let mapped: &[&str] = match (service, operation) {
        ("S3", "HeadObject") => &["s3:GetObject"],
        ("S3", "HeadBucket") => &["s3:ListBucket"],
        ("S3", "ListObjectVersions") => &["s3:ListBucketVersions"],
        ("S3", "DeleteObjects") => &["s3:DeleteObject", "s3:DeleteObjectVersion"],
        ("Lambda", "Invoke") => &["lambda:InvokeFunction"],
        // A queue created with tags needs the tagging permission too.
        ("SQS", "CreateQueue") => &["sqs:CreateQueue", "sqs:TagQueue"],
        _ => return vec![format!("{prefix}:{operation}")],
    };
    mapped.iter().map(|s| s.to_string()).collect()
}

/// The policy document, every statement on `Resource: "*"` (actions are exact; resources are
/// not narrowed, since bucket, stack and role names vary with accounts and regions).
pub fn document() -> String {
    let statements: Vec<serde_json::Value> = STATEMENTS
        .iter()
        .chain(std::iter::once(&TEMPLATE_RESOURCES))
        .filter(|s| !s.actions.is_empty())
        .map(|s| {
            let mut actions: Vec<&str> = s.actions.to_vec();
            actions.sort_unstable();
            actions.dedup();
            serde_json::json!({ "Sid": s.sid, "Effect": "Allow", "Action": actions, "Resource": "*" })
        })
        .collect();
    let doc = serde_json::json!({ "Version": "2012-10-17", "Statement": statements });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// Every action ctguard's own calls need (the recorded statements, not the template resources).
pub fn own_actions() -> std::collections::BTreeSet<&'static str> {
    STATEMENTS.iter().flat_map(|s| s.actions.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_operations_map_to_iam_actions() {
        assert_eq!(actions_for("CloudFormation", "DescribeStacks"), vec!["cloudformation:DescribeStacks"]);
        assert_eq!(actions_for("EventBridge", "PutEvents"), vec!["events:PutEvents"]);
        assert_eq!(actions_for("S3", "DeleteObjects"), vec!["s3:DeleteObject", "s3:DeleteObjectVersion"]);
        assert_eq!(actions_for("S3", "HeadObject"), vec!["s3:GetObject"]);
        assert_eq!(actions_for("Lambda", "Invoke"), vec!["lambda:InvokeFunction"]);
    }

    #[test]
    fn the_document_is_an_iam_policy_with_no_wildcard_action() {
        let v: serde_json::Value = serde_json::from_str(&document()).unwrap_or_default();
        assert_eq!(v["Version"], "2012-10-17");
        let statements = v["Statement"].as_array().cloned().unwrap_or_default();
        assert!(statements.len() >= 4);
        for s in statements {
            for a in s["Action"].as_array().cloned().unwrap_or_default() {
                let a = a.as_str().unwrap_or_default().to_string();
                assert!(a.contains(':') && !a.contains('*'), "{a}");
            }
        }
    }
}
