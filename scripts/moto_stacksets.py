"""Service-managed StackSets for the emulator, as AWS documents them (loaded by moto_lambda.py).

moto (pinned 5.2.5) keeps service-managed (``PermissionModel: SERVICE_MANAGED``) stack sets,
but ignores ``AccountFilterType``, automatic deployment and nested OUs, deploys into the
management account when the root is targeted, and hides the instances' stacks from the target
accounts. This module replaces, in-process, the service-managed side of CreateStackInstances,
UpdateStackSet, DeleteStackInstances and ListStackSetOperationResults, and follows
Organizations' CreateAccount, MoveAccount and RemoveAccountFromOrganization. Self-managed stack
sets keep moto's behaviour.

What is honoured, as AWS documents it:

- ``DeploymentTargets.OrganizationalUnitIds``: the root or OUs, every account below them at any
  depth; each instance records the targeted OU it was reached through
  (``OrganizationalUnitId`` in ListStackInstances). An OU id that is not in the organization is
  refused (ValidationError).
- ``AccountFilterType`` with ``Accounts``: ``NONE`` (every account below the OUs),
  ``INTERSECTION`` (only the listed ones below the OUs), ``DIFFERENCE`` (all below the OUs but
  the listed ones), ``UNION`` (all below the OUs and the listed ones).
- The management account never gets an instance, even below a targeted OU or listed.
- Instances are real stacks in the member account and region (named
  ``StackSet-<stack set>-<uuid>``, visible to the account's own DescribeStacks, with the stack
  set's tags), built from the stack set's template and parameters with the instance's
  ``ParameterOverrides``: their resources exist in that account, so deployed functions run
  there. A stack whose resources fail (for example a fixed name another stack holds:
  ``Table already exists``) is rolled back (the resources it created are deleted, the stack
  removed); the instance stays ``OUTDATED``/``FAILED`` with the reason, and the operation result
  for that account and region is ``FAILED``.
- ``AutoDeployment`` (CreateStackSet/UpdateStackSet, shown by DescribeStackSet): an account
  that joins a targeted OU later (CreateAccount, MoveAccount into it) gets the stack set's
  instances in every region the stack set was deployed to; one that leaves the organization
  (RemoveAccountFromOrganization) or moves out of the targeted OUs loses them, unless
  ``RetainStacksOnAccountRemoval`` (then the stack stays in the account, without instance).
  The targeted OUs are those of CreateStackInstances; DeleteStackInstances by OU without an
  account filter drops an OU from them.
- UpdateStackSet without ``DeploymentTargets`` updates the template and parameters of every
  instance (their stacks are updated); with targets, only those accounts' instances.
  UpdateStackInstances sets ``ParameterOverrides`` on existing instances (by OU and filter;
  an empty list removes them), which win over the stack set's values and show in
  DescribeStackInstance.
- DeleteStackInstances by OU (and filter) deletes the selected accounts' instances and stacks
  (``RetainStacks`` keeps the stacks); DeleteStackSet is refused while instances exist (moto).
- Operations: ``OperationId`` reused is refused (``OperationIdAlreadyExistsException``), as AWS
  does for a retried request; per account x region results (ListStackSetOperationResults) with
  ``SUCCEEDED``/``FAILED``/``CANCELLED`` and reasons; suspended accounts are skipped (result
  ``CANCELLED`` with ``SKIPPED_SUSPENDED_ACCOUNT``, existing instances kept);
  ``FailureToleranceCount``/``FailureTolerancePercentage`` per region: once more accounts
  failed than tolerated, the rest of that region is ``CANCELLED`` and the operation ``FAILED``.
- CreateStackInstances whose targets select no account at all is refused (ValidationError):
  AWS does not document that it succeeds, so the emulator makes a caller that sends it fail.
- STS AssumeRole into a member account of an organization needs the role to exist there (AWS
  answers AccessDenied otherwise; moto hands out sessions for any role name). This is what lets
  a test delete ``OrganizationAccountAccessRole`` and prove nothing needs it. Other accounts
  (the management account, accounts outside any organization, which tests conjure freely)
  keep moto's behaviour.

- ``CallAs``: service-managed stack sets are created and operated by the management account
  (``SELF``) or by an account registered as delegated administrator for
  ``member.org.stacksets.cloudformation.amazonaws.com`` (``DELEGATED_ADMIN``; the principal is
  added to the ones moto's RegisterDelegatedAdministrator accepts); anyone else, or the wrong
  ``CallAs``, gets a ValidationError. A delegated administrator may ListAccounts,
  ListDelegatedAdministrators and ListAWSServiceAccessForOrganization, as AWS allows a delegated
  administrator for any service (moto answers a member from its own, empty, view).

What it does not do, said plainly: operations complete synchronously (AWS runs them for
minutes; statuses are final when the call returns, so callers' polling sees SUCCEEDED or
FAILED at once); ``MaxConcurrent*`` and ``RegionConcurrencyType`` change nothing (one account
at a time); trusted access is not checked; the stack sets of a delegated administrator live in
its own account's CloudFormation; a failed stack is removed rather than left in
``ROLLBACK_COMPLETE``; closing an account (CloseAccount) only suspends it; drift detection,
``AccountsUrl``, ``ConcurrencyMode`` and import are absent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.iam.models import iam_backends
from moto.organizations.models import FakeDelegatedAdministrator, OrganizationsBackend, organizations_backends
from moto.sts.models import STSBackend
from moto.utilities.utils import get_partition

SERVICE_MANAGED = "SERVICE_MANAGED"
# The service principal a StackSets delegated administrator is registered for.
STACKSETS_PRINCIPAL = "member.org.stacksets.cloudformation.amazonaws.com"
SUSPENDED = "SKIPPED_SUSPENDED_ACCOUNT"
# One lock for every StackSets change: operations and organization changes never interleave.
LOCK = threading.RLock()


class OperationIdAlreadyExists(CloudFormationError):
    code = "OperationIdAlreadyExistsException"
    # moto finds an error's service model from the second part of its module name.
    __module__ = "moto.cloudformation.ctguard_stacksets"


class AccessDenied(ServiceException):
    code = "AccessDenied"
    __module__ = "moto.sts.ctguard_stacksets"


# --- the organization --------------------------------------------------------------------------


class Org:
    """A snapshot of the organization a stack set's account belongs to."""

    def __init__(self, backend: OrganizationsBackend):
        self.master = backend.org.master_account_id
        self.root = backend.org.root_id
        self.ou_parent = {ou.id: ou.parent_id for ou in backend.ou if ou.id != self.root}
        self.account_parent = {a.id: a.parent_id for a in backend.accounts}
        self.suspended = {a.id for a in backend.accounts if a.status == "SUSPENDED"}
        self.delegated = {d.account.id for d in backend.admins if STACKSETS_PRINCIPAL in d.services}

    @staticmethod
    def of(account: str, region: str) -> Org | None:
        """The organization `account` is the management account or a member of."""
        partition = get_partition(region)
        own = organizations_backends[account][partition]
        if own.org is not None:
            return Org(own)
        master = organizations_backends.master_accounts.get(account)
        if master is None:
            return None
        backend = organizations_backends[master[0]][master[1]]
        return Org(backend) if backend.org is not None else None

    def known(self, ou: str) -> bool:
        return ou == self.root or ou in self.ou_parent

    def via(self, account: str, ous: Iterable[str]) -> str | None:
        """The first of `ous` that `account` sits below (at any depth), if any."""
        wanted = list(ous)
        cur = self.account_parent.get(account)
        chain = []
        while cur is not None:
            chain.append(cur)
            cur = self.ou_parent.get(cur) if cur != self.root else None
        return next((ou for ou in wanted if ou in chain), None)

    def select(self, targets: dict[str, Any]) -> list[tuple[str, str]]:
        """(member account, the OU it is reached through) for DeploymentTargets, in account order."""
        ous = list(targets.get("OrganizationalUnitIds") or [])
        listed = [str(a) for a in targets.get("Accounts") or []]
        kind = str(targets.get("AccountFilterType") or "NONE")
        if kind not in ("NONE", "INTERSECTION", "DIFFERENCE", "UNION"):
            raise ValidationError(message=f"AccountFilterType {kind} is not one of NONE, INTERSECTION, DIFFERENCE, UNION")
        if kind != "NONE" and not listed:
            raise ValidationError(message=f"AccountFilterType {kind} needs Accounts")
        for ou in ous:
            if not self.known(ou):
                raise ValidationError(message=f"OrganizationalUnitId {ou} is not in the organization")
        out = []
        for account in sorted(self.account_parent):
            if account == self.master:
                continue  # StackSets never deploy into the management account.
            ou = self.via(account, ous)
            if kind == "INTERSECTION":
                ou = ou if account in listed else None
            elif kind == "DIFFERENCE":
                ou = ou if account not in listed else None
            elif kind == "UNION" and ou is None and account in listed:
                ou = self.account_parent.get(account)
            if ou is not None:
                out.append((account, ou))
        return out


# --- instances -----------------------------------------------------------------------------------


def _params(ss: Any, overrides: list[dict[str, Any]]) -> dict[str, str]:
    p = dict(ss.parameters or {})
    for o in overrides or []:
        if o.get("UsePreviousValue"):
            continue
        p[str(o["ParameterKey"])] = str(o.get("ParameterValue", ""))
    return p


class ManagedInstance:
    """One account x region of a service-managed stack set: a real stack in that account."""

    def __init__(self, ss: Any, account: str, region: str, ou: str, overrides: list[dict[str, Any]]):
        self.stackset_id = ss.id
        self.stackset_name = ss.name
        self.account_id = account
        self.region_name = region
        self.ou = ou
        self.parameters = list(overrides or [])
        self.stack: Any = None
        self.status = "CURRENT"
        self.detailed = "SUCCEEDED"
        self.reason: str | None = None

    def _backend(self) -> Any:
        return cfn_models.cloudformation_backends[self.account_id][self.region_name]

    def apply(self, ss: Any) -> str | None:
        """Creates or updates the stack from the stack set; returns why it failed, if it did."""
        backend = self._backend()
        params = _params(ss, self.parameters)
        try:
            if self.stack is None:
                name = f"StackSet-{ss.name}-{uuid.uuid4()}"
                try:
                    self.stack = backend.create_stack(name=name, template=ss.template, parameters=params, tags=ss.tags)
                except Exception:
                    self._roll_back(backend, name)
                    raise
            else:
                parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
                backend.update_stack(self.stack.stack_id, ss.template, None, parameters, ss.tags)
        except Exception as e:  # any resource failure is the instance's failure, as in AWS
            why = getattr(e, "message", None) or str(e) or type(e).__name__
            self.status, self.detailed, self.reason = "OUTDATED", "FAILED", f"ResourceLogicalId failure: {why}"
            return self.reason
        self.status, self.detailed, self.reason = "CURRENT", "SUCCEEDED", None
        return None

    @staticmethod
    def _roll_back(backend: Any, name: str) -> None:
        """Deletes what a failed stack created (only its own resources) and the stack itself."""
        for sid, st in list(backend.stacks.items()):
            if st.name == name:
                try:
                    st.delete()
                except Exception:
                    pass
                backend.stacks.pop(sid, None)

    def delete(self, retain: bool = False) -> None:
        if self.stack is None or retain:
            return
        backend = self._backend()
        try:
            backend.delete_stack(self.stack.stack_id)
        except Exception:
            pass
        self.stack = None

    def to_dict(self) -> dict[str, Any]:
        d = {
            "StackSetId": self.stackset_id,
            "Region": self.region_name,
            "Account": self.account_id,
            "OrganizationalUnitId": self.ou,
            "Status": self.status,
            "StackInstanceStatus": {"DetailedStatus": self.detailed},
            "ParameterOverrides": self.parameters,
        }
        if self.stack is not None:
            d["StackId"] = self.stack.stack_id
        if self.reason:
            d["StatusReason"] = self.reason
        return d


# --- operations ----------------------------------------------------------------------------------


def _tolerated(prefs: dict[str, Any], count: int) -> int:
    if prefs.get("FailureToleranceCount") is not None:
        return int(prefs["FailureToleranceCount"])
    if prefs.get("FailureTolerancePercentage") is not None:
        return int(count * int(prefs["FailureTolerancePercentage"]) // 100)
    return 0


class Operation:
    """One StackSets operation: per account x region results, recorded on the stack set."""

    def __init__(self, ss: Any, op_id: str | None, action: str, prefs: dict[str, Any] | None):
        op_id = op_id or str(uuid.uuid4())
        if any(o["OperationId"] == op_id for o in ss.operations):
            raise OperationIdAlreadyExists(f"The operation {op_id} already exists")
        self.ss = ss
        self.prefs = prefs or {}
        self.record: dict[str, Any] = {
            "OperationId": op_id,
            "Action": action,
            "Status": "RUNNING",
            "CreationTimestamp": utcnow(),
            "Instances": [],
            "ctguard_results": [],
        }
        ss.operations.append(self.record)

    @property
    def id(self) -> str:
        return str(self.record["OperationId"])

    def result(self, account: str, region: str, ou: str | None, status: str, reason: str | None = None) -> None:
        r = {
            "Account": account,
            "Region": region,
            "Status": status,
            "AccountGateResult": {"Status": "SKIPPED", "StatusReason": "no account gate function"},
        }
        if ou:
            r["OrganizationalUnitId"] = ou
        if reason:
            r["StatusReason"] = reason
        self.record["ctguard_results"].append(r)

    def run(self, work: list[tuple[str, str, str | None]], step: Any, org: Org) -> None:
        """Runs `step(account, region, ou) -> error or None` per region, honouring failure
        tolerance and skipping suspended accounts."""
        failed_any = False
        for region in dict.fromkeys(r for _, r, _ in work):
            items = [(a, o) for a, r, o in work if r == region]
            allowed = _tolerated(self.prefs, len(items))
            failures = 0
            for account, ou in items:
                if failures > allowed:
                    self.result(account, region, ou, "CANCELLED", "Cancelled since failure tolerance has exceeded")
                    continue
                if account in org.suspended:
                    self.result(account, region, ou, "CANCELLED", SUSPENDED)
                    continue
                try:
                    why = step(account, region, ou)
                except Exception as e:  # the operation still ends, with this account failed
                    why = f"InternalFailure: {e}"
                if why is None:
                    self.result(account, region, ou, "SUCCEEDED")
                else:
                    failures += 1
                    self.result(account, region, ou, "FAILED", why)
            failed_any = failed_any or failures > allowed
        self.record["Status"] = "FAILED" if failed_any else "SUCCEEDED"
        self.record["EndTimestamp"] = utcnow() + timedelta(seconds=1)


# --- the stack set's own state -----------------------------------------------------------------------


def _state(ss: Any) -> dict[str, Any]:
    """What this module keeps on moto's StackSet: auto-deployment, targeted OUs, regions."""
    if not hasattr(ss, "ctguard"):
        ss.ctguard = {"ous": [], "regions": []}
        ss.auto_deployment = {"Enabled": False, "RetainStacksOnAccountRemoval": False}
        ss.organizational_unit_ids = []
    return ss.ctguard


def _instances(ss: Any) -> list[Any]:
    # moto's list, shared with StackSet.stack_instances: changed in place, never replaced.
    return ss.instances.stack_instances


def _find(ss: Any, account: str, region: str) -> Any:
    return next((i for i in _instances(ss) if i.account_id == account and i.region_name == region), None)


def _place(ss: Any, account: str, region: str, ou: str, overrides: list[dict[str, Any]] | None) -> str | None:
    inst = _find(ss, account, region)
    if inst is None:
        inst = ManagedInstance(ss, account, region, ou, overrides or [])
        _instances(ss).append(inst)
    elif overrides:
        inst.parameters = list(overrides)
    return inst.apply(ss)


def _unplace(ss: Any, account: str, region: str, retain: bool) -> None:
    inst = _find(ss, account, region)
    if inst is not None:
        inst.delete(retain)
        _instances(ss).remove(inst)


def _target_ous(ss: Any, ous: Iterable[str]) -> None:
    st = _state(ss)
    for ou in ous:
        if ou not in st["ous"]:
            st["ous"].append(ou)
    ss.organizational_unit_ids = list(st["ous"])


# --- the API calls ---------------------------------------------------------------------------------------


def _stack_set(resp: CloudFormationResponse) -> Any:
    return resp.cloudformation_backend.describe_stack_set(resp._get_param("StackSetName"))


def _auto_param(resp: CloudFormationResponse, ss: Any) -> None:
    auto = resp._get_param("AutoDeployment")
    if isinstance(auto, dict):
        _state(ss)
        ss.auto_deployment = {
            "Enabled": bool(auto.get("Enabled", False)),
            "RetainStacksOnAccountRemoval": bool(auto.get("RetainStacksOnAccountRemoval", False)),
        }


_orig = {
    name: getattr(CloudFormationResponse, name)
    for name in (
        "create_stack_set",
        "update_stack_set",
        "create_stack_instances",
        "update_stack_instances",
        "delete_stack_instances",
        "list_stack_set_operation_results",
    )
}


def create_stack_set(self: CloudFormationResponse) -> ActionResult:
    with LOCK:
        if self._get_param("PermissionModel") == SERVICE_MANAGED:
            _check_call_as(self)
        out = _orig["create_stack_set"](self)
        ss = _stack_set(self)
        if ss.permission_model == SERVICE_MANAGED:
            _state(ss)
            _auto_param(self, ss)
        return out


def service_managed(handler: Any) -> Any:
    """A CloudFormation response method replaced for service-managed stack sets only: under the
    lock, after the CallAs check; self-managed ones keep moto's own."""
    name = handler.__name__

    def method(self: CloudFormationResponse) -> ActionResult:
        with LOCK:
            ss = _stack_set(self)
            if ss.permission_model != SERVICE_MANAGED:
                return _orig[name](self)
            _check_call_as(self)
            return handler(self, ss)

    method.__name__ = name
    return method


class Request:
    """What an operation on instances asks: DeploymentTargets (OUs required), Regions, and the
    operation (its id and preferences), with the organization to resolve the targets in."""

    def __init__(self, resp: CloudFormationResponse, ss: Any, action: str, targets_required: bool = True):
        self.targets = resp._get_params().get("DeploymentTargets") or {}
        self.ous = [str(o) for o in self.targets.get("OrganizationalUnitIds") or []]
        if targets_required and not self.ous:
            raise ValidationError(message="StackSets with SERVICE_MANAGED permission model need OrganizationalUnitIds")
        self.regions = [str(r) for r in resp._get_param("Regions", []) or []]
        self.org = _org_or_fail(resp.current_account, resp.region)
        # Resolved (and refused) before the operation is recorded: a refused request leaves no
        # operation behind, in particular none that would look RUNNING forever.
        self.selected = self.org.select(self.targets) if self.ous else []
        if action == "CREATE" and not self.selected:
            raise ValidationError(message="the deployment targets select no account (not documented to succeed)")
        self.op = Operation(ss, resp._get_param("OperationId"), action, resp._get_param("OperationPreferences"))

    def chosen(self) -> set[str]:
        return {a for a, _ in self.selected}


@service_managed
def create_stack_instances(self: CloudFormationResponse, ss: Any) -> ActionResult:
    if not self._get_param("Regions"):
        raise ValidationError(message="Regions is required")
    req = Request(self, ss, "CREATE")
    selected = req.selected
    overrides = self._get_param("ParameterOverrides", []) or []
    st = _state(ss)
    _target_ous(ss, req.ous)
    st["regions"].extend(r for r in req.regions if r not in st["regions"])
    work = [(a, r, ou) for r in req.regions for a, ou in selected]
    req.op.run(work, lambda a, r, ou: _place(ss, a, r, str(ou), overrides), req.org)
    return ActionResult({"OperationId": req.op.id})


@service_managed
def update_stack_set(self: CloudFormationResponse, ss: Any) -> ActionResult:
    template = self._get_param("TemplateBody")
    if self._get_param("TemplateURL"):
        template = self._get_stack_from_s3_url(self._get_param("TemplateURL"))
    if not template and not self._get_param("UsePreviousTemplate"):
        raise ValidationError(message="TemplateBody, TemplateURL or UsePreviousTemplate is required")
    req = Request(self, ss, "UPDATE", targets_required=False)
    ss.template = template or ss.template
    ss.instances.template = ss.template
    incoming = self._get_param("Parameters", []) or []
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in incoming if not p.get("UsePreviousValue")}
    params.update({p["ParameterKey"]: ss.parameters.get(p["ParameterKey"], "") for p in incoming if p.get("UsePreviousValue")})
    ss.parameters = params
    tags = self._get_param("Tags")
    if tags is not None:
        ss.tags = {t["Key"]: t["Value"] for t in tags}
    description = self._get_param("Description")
    if description is not None:
        ss.description = description
    _auto_param(self, ss)
    chosen = req.chosen() if req.ous else None
    work = [
        (i.account_id, i.region_name, i.ou)
        for i in list(_instances(ss))
        if (chosen is None or i.account_id in chosen) and (not req.regions or i.region_name in req.regions)
    ]
    req.op.run(work, lambda a, r, _ou: _find(ss, a, r).apply(ss), req.org)
    return ActionResult({"OperationId": req.op.id})


@service_managed
def update_stack_instances(self: CloudFormationResponse, ss: Any) -> ActionResult:
    """ParameterOverrides on existing instances (by OU and filter): given keys are replaced,
    an empty list removes every override; the instances' stacks are updated."""
    req = Request(self, ss, "UPDATE")
    given = self._get_param("ParameterOverrides", []) or []
    chosen = req.chosen()

    def step(a: str, r: str, _ou: str | None) -> str | None:
        inst = _find(ss, a, r)
        if not given:
            inst.parameters = []
        else:
            merged = {p["ParameterKey"]: p for p in inst.parameters}
            merged.update({p["ParameterKey"]: p for p in given if not p.get("UsePreviousValue")})
            inst.parameters = list(merged.values())
        return inst.apply(ss)

    work = [
        (i.account_id, i.region_name, i.ou)
        for i in list(_instances(ss))
        if i.account_id in chosen and i.region_name in req.regions
    ]
    req.op.run(work, step, req.org)
    return ActionResult({"OperationId": req.op.id})


@service_managed
def delete_stack_instances(self: CloudFormationResponse, ss: Any) -> ActionResult:
    req = Request(self, ss, "DELETE")
    retain = bool(self._get_param("RetainStacks", False))
    selected = req.chosen()
    none_filter = str(req.targets.get("AccountFilterType") or "NONE") == "NONE"
    # Instances of accounts no longer in the organization go with the OU they were listed under.
    gone = lambda i: none_filter and i.ou in req.ous and i.account_id not in req.org.account_parent  # noqa: E731
    work = [
        (i.account_id, i.region_name, i.ou)
        for i in list(_instances(ss))
        if i.region_name in req.regions and (i.account_id in selected or gone(i))
    ]

    def step(a: str, r: str, _ou: str | None) -> None:
        _unplace(ss, a, r, retain)
        return None

    req.op.run(work, step, req.org)
    if none_filter:
        st = _state(ss)
        st["ous"] = [o for o in st["ous"] if o not in req.ous]
        ss.organizational_unit_ids = list(st["ous"])
    return ActionResult({"OperationId": req.op.id})


def list_stack_set_operation_results(self: CloudFormationResponse) -> ActionResult:
    ss = _stack_set(self)
    op = ss.get_operation(self._get_param("OperationId"))
    if "ctguard_results" not in op:
        return _orig["list_stack_set_operation_results"](self)
    return ActionResult({"Summaries": list(op["ctguard_results"])})


def _org_or_fail(account: str, region: str) -> Org:
    org = Org.of(account, region)
    if org is None:
        raise ValidationError(message="service-managed StackSets need AWS Organizations: the account is in none")
    return org


def _check_call_as(resp: CloudFormationResponse) -> None:
    """Service-managed StackSets are run by the management account (CallAs SELF) or by a
    registered StackSets delegated administrator (CallAs DELEGATED_ADMIN), nobody else."""
    call_as = str(resp._get_param("CallAs") or "SELF")
    org = _org_or_fail(resp.current_account, resp.region)
    me = resp.current_account
    if call_as == "SELF" and me != org.master:
        raise ValidationError(
            message=f"{me} is not the management account: service-managed StackSets need CallAs DELEGATED_ADMIN "
            "from a delegated administrator"
        )
    if call_as == "DELEGATED_ADMIN" and me not in org.delegated:
        raise ValidationError(message=f"Account used is not a delegated administrator: {me}")


# --- automatic deployment ------------------------------------------------------------------------------


def _stack_sets_of(org: Org) -> list[tuple[str, str, Any]]:
    """(owner account, region, stack set) of every active service-managed stack set the
    organization's accounts own (the management account or a delegated administrator)."""
    out = []
    owners = set(org.account_parent) | {org.master}
    for account, regions in list(cfn_models.cloudformation_backends.items()):
        if account not in owners:
            continue
        for region, backend in list(regions.items()):
            for ss in list(backend.stacksets.values()):
                if ss.permission_model == SERVICE_MANAGED and ss.status == "ACTIVE" and hasattr(ss, "ctguard"):
                    out.append((account, region, ss))
    return out


def follow(master: str, partition: str, account: str) -> None:
    """Automatic deployment after `account` joined, moved or left: instances where it is now
    below a targeted OU and has none, deletions where it no longer is (unless retained)."""
    backend = organizations_backends[master][partition]
    if backend.org is None:
        return
    org = Org(backend)
    for _owner, _region, ss in _stack_sets_of(org):
        auto = ss.auto_deployment
        if not auto.get("Enabled"):
            continue
        st = _state(ss)
        ou = org.via(account, st["ous"]) if account in org.account_parent and account != org.master else None
        todo = [r for r in st["regions"] if (_find(ss, account, r) is None) == (ou is not None)]
        if not todo:
            continue
        if ou is not None:
            op = Operation(ss, None, "CREATE", {})
            op.run([(account, r, ou) for r in todo], lambda a, r, o: _place(ss, a, r, str(o), []), org)
        else:
            retain = bool(auto.get("RetainStacksOnAccountRemoval"))
            op = Operation(ss, None, "DELETE", {})
            op.run([(account, r, _find(ss, account, r).ou) for r in todo], lambda a, r, _o: _unplace(ss, a, r, retain), org)


def _after(name: str, account_of: Any) -> Any:
    original = getattr(OrganizationsBackend, name)

    def hooked(self: OrganizationsBackend, **kwargs: Any) -> Any:
        with LOCK:
            out = original(self, **kwargs)
            follow(self.account_id, self.partition, account_of(kwargs, out))
            return out

    hooked.__name__ = name
    return hooked


# --- Organizations reads from a delegated administrator ----------------------------------------------

_orig_list_accounts = OrganizationsBackend.list_accounts


def list_accounts(self: OrganizationsBackend, *args: Any, **kwargs: Any) -> Any:
    """A delegated administrator may list the organization's accounts (moto answers from the
    member's own, empty, backend)."""
    master = organizations_backends.master_accounts.get(self.account_id)
    if self.org is None and master is not None:
        backend = organizations_backends[master[0]][master[1]]
        if any(d.account.id == self.account_id for d in backend.admins):
            return backend.list_accounts(*args, **kwargs)
    return _orig_list_accounts(self, *args, **kwargs)


def _as_delegated_admin(name: str) -> Any:
    """`name` from a delegated administrator answers from the organization, as AWS lets "a member
    account that is a delegated administrator for an AWS service" call it (moto answers a member
    from its own, empty, backend)."""
    orig = getattr(OrganizationsBackend, name)

    def hooked(self: OrganizationsBackend, *args: Any, **kwargs: Any) -> Any:
        master = organizations_backends.master_accounts.get(self.account_id)
        if self.org is None and master is not None:
            backend = organizations_backends[master[0]][master[1]]
            if any(d.account.id == self.account_id for d in backend.admins):
                return orig(backend, *args, **kwargs)
        return orig(self, *args, **kwargs)

    hooked.__name__ = name
    return hooked


# --- STS: a role that does not exist cannot be assumed ---------------------------------------------------

_orig_assume_role = STSBackend.assume_role


def assume_role(self: STSBackend, region_name: str, role_session_name: str, role_arn: str, *args: Any, **kwargs: Any) -> Any:
    parts = str(role_arn).split(":")
    if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("role/"):
        account = parts[4]
        if account in organizations_backends.master_accounts:  # a member account
            try:
                iam_backends[account][get_partition(region_name)].get_role_by_arn(role_arn)
            except Exception:
                raise AccessDenied(
                    f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn} (no such role)"
                ) from None
    return _orig_assume_role(self, region_name, role_session_name, role_arn, *args, **kwargs)


def install_hooks() -> None:
    CloudFormationResponse.create_stack_set = create_stack_set
    CloudFormationResponse.update_stack_set = update_stack_set
    CloudFormationResponse.create_stack_instances = create_stack_instances
    CloudFormationResponse.update_stack_instances = update_stack_instances
    CloudFormationResponse.delete_stack_instances = delete_stack_instances
    CloudFormationResponse.list_stack_set_operation_results = list_stack_set_operation_results
    OrganizationsBackend.create_account = _after(
        "create_account", lambda _kw, out: out["CreateAccountStatus"]["AccountId"]
    )
    OrganizationsBackend.move_account = _after("move_account", lambda kw, _out: kw["AccountId"])
    OrganizationsBackend.remove_account_from_organization = _after(
        "remove_account_from_organization", lambda kw, _out: kw["AccountId"]
    )
    STSBackend.assume_role = assume_role
    OrganizationsBackend.list_accounts = list_accounts
    for name in ("list_delegated_administrators", "list_aws_service_access_for_organization"):
        setattr(OrganizationsBackend, name, _as_delegated_admin(name))
    if STACKSETS_PRINCIPAL not in FakeDelegatedAdministrator.SUPPORTED_SERVICES:
        FakeDelegatedAdministrator.SUPPORTED_SERVICES.append(STACKSETS_PRINCIPAL)
