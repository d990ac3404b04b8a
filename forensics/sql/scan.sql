-- ctguard scan --athena: the reduction `ctguard scan` does locally, pushed into Athena.
--
-- Within one scope only the first use of each (key, network identity) can change the detector's
-- state, so the query returns, for every group of uses that the detector necessarily classifies
-- alike (same key, same fields deciding scope, identity and skip), the earliest one; plus every
-- record that can carry a rotation or move signal. ctguard rebuilds each row as a CloudTrail record
-- and replays it through the same Detector, which makes every decision: the groups here are only
-- *finer* than the detector's, so its earliest use per (scope, key, identity) is among these rows.
-- Rows never carry a session token: signals return only the request/response fields they need.
WITH events AS (
  SELECT
    "$path" AS path,
    try(from_iso8601_timestamp(eventtime)) AS ts,
    eventtime, eventid, eventname, eventsource, eventtype, awsregion, sourceipaddress, useragent,
    recipientaccountid, vpcendpointid, vpcendpointaccountid, errorcode, sessioncredentialfromconsole,
    useridentity.type AS ui_type,
    useridentity.arn AS ui_arn,
    useridentity.accountid AS ui_account,
    useridentity.accesskeyid AS ui_key,
    useridentity.invokedby AS ui_invoked_by,
    useridentity.sessioncontext.attributes.creationdate AS ui_created,
    useridentity.sessioncontext.sessionissuer.arn AS ui_issuer_arn,
    useridentity.sessioncontext.ec2roledelivery AS ui_ec2_delivery,
    requestparameters, responseelements
  FROM {{table}}
  WHERE {{where}}
),
uses AS (
  SELECT *, row_number() OVER (
    PARTITION BY ui_key, sourceipaddress, vpcendpointid, vpcendpointaccountid, eventtype,
      sessioncredentialfromconsole,
      -- Only console-looking user agents can change the verdict; others stay one group.
      CASE WHEN regexp_like(lower(useragent), 'console|signin') THEN useragent END,
      recipientaccountid, ui_account, ui_type, ui_arn
    -- The local scan's tie-break (FirstUse::order in scan.rs): time, then event id, event name,
    -- source, region, user agent and caller (NULL as ''), then the file.
    ORDER BY ts, coalesce(eventid, ''), coalesce(eventname, ''), coalesce(eventsource, ''),
      coalesce(awsregion, ''), coalesce(useragent, ''), coalesce(ui_arn, ''), path) AS rn
  FROM events
  WHERE ts IS NOT NULL AND (ui_key LIKE 'ASIA%' OR ui_key LIKE 'STS.%')
),
signals AS (
  SELECT * FROM events
  WHERE ts IS NOT NULL AND errorcode IS NULL AND (
    (eventsource = 'sts.amazonaws.com' AND eventname = 'AssumeRole'
      AND (sourceipaddress = 'ec2.amazonaws.com' OR ui_invoked_by = 'ec2.amazonaws.com'))
    OR (eventsource = 'ec2.amazonaws.com'
      AND eventname IN ('AssociateAddress', 'AttachNetworkInterface', 'StartInstances')))
)
SELECT kind, path, eventtime, eventid, eventname, eventsource, eventtype, awsregion, sourceipaddress,
  useragent, recipientaccountid, vpcendpointid, vpcendpointaccountid, errorcode,
  sessioncredentialfromconsole, ui_type, ui_arn, ui_account, ui_key, ui_invoked_by, ui_created,
  ui_issuer_arn, ui_ec2_delivery, rp_role_arn, rp_session_name, rp_instance_id, rp_instances,
  re_key, re_expiration
FROM (
  SELECT 'use' AS kind, ts, path, eventtime, eventid, eventname, eventsource, eventtype, awsregion,
    sourceipaddress, useragent, recipientaccountid, vpcendpointid, vpcendpointaccountid, errorcode,
    sessioncredentialfromconsole, ui_type, ui_arn, ui_account, ui_key, ui_invoked_by, ui_created,
    ui_issuer_arn, ui_ec2_delivery,
    CAST(NULL AS VARCHAR) AS rp_role_arn, CAST(NULL AS VARCHAR) AS rp_session_name,
    CAST(NULL AS VARCHAR) AS rp_instance_id, CAST(NULL AS VARCHAR) AS rp_instances,
    CAST(NULL AS VARCHAR) AS re_key, CAST(NULL AS VARCHAR) AS re_expiration
  FROM uses WHERE rn = 1
  UNION ALL
  SELECT 'signal' AS kind, ts, path, eventtime, eventid, eventname, eventsource, eventtype, awsregion,
    sourceipaddress, useragent, recipientaccountid, vpcendpointid, vpcendpointaccountid, errorcode,
    sessioncredentialfromconsole, ui_type, ui_arn, ui_account, CAST(NULL AS VARCHAR) AS ui_key,
    ui_invoked_by, ui_created, ui_issuer_arn, ui_ec2_delivery,
    json_extract_scalar(requestparameters, '$.roleArn') AS rp_role_arn,
    json_extract_scalar(requestparameters, '$.roleSessionName') AS rp_session_name,
    json_extract_scalar(requestparameters, '$.instanceId') AS rp_instance_id,
    json_format(json_extract(requestparameters, '$.instancesSet')) AS rp_instances,
    json_extract_scalar(responseelements, '$.credentials.accessKeyId') AS re_key,
    json_extract_scalar(responseelements, '$.credentials.expiration') AS re_expiration
  FROM signals
) AS reduced
ORDER BY ts, kind, coalesce(eventid, ''), path
