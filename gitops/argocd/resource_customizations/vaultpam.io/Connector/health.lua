-- Argo CD health check for vaultpam.io/Connector (docs/gitops.md).
-- Uses only what Argo CD opens for a check from argocd-cm (base and table; no string library), so
-- it needs no resource.customizations.useOpenLibs setting. First match wins:
--   no status yet, deleting, or a spec the operator has not observed yet   -> Progressing
--   spec.paused                                                           -> Suspended
--   Stalled=True (a person must change something)                         -> Degraded
--     (one the control plane showed, kept while it is unreachable: says that too)
--   NeedsRecovery, Offline, Degraded (the connector does not serve)       -> Degraded
--   Recovering, Pending, Enrolling, or Reconciling=True                   -> Progressing
--   Ready: True -> Healthy, False -> Degraded, Unknown or absent -> Progressing
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

-- "(Reason): message", the words the operator wrote on a condition.
local function said(c)
  return "(" .. tostring(c.reason) .. "): " .. tostring(c.message or "")
end

if obj.status == nil or (obj.status.phase == nil and obj.status.conditions == nil) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the Connector's status"
  return hs
end

local status = obj.status
local phase = status.phase or "No phase yet"
local stalled = condition("Stalled")
local reconciling = condition("Reconciling")
local ready = condition("Ready")
local healthy = condition("Healthy")

-- Argo CD itself shows "Pending deletion" for any object with a deletionTimestamp before it runs a
-- health check; this says the same with the operator's words for whoever runs the script directly.
if obj.metadata.deletionTimestamp ~= nil or phase == "Terminating" then
  hs.status = "Progressing"
  if isTrue(reconciling) then
    hs.message = "Terminating: " .. tostring(reconciling.message)
  else
    hs.message = "Terminating: the Connector is being deleted"
  end
  return hs
end

-- A status computed from an older spec says nothing about the current one.
if obj.metadata.generation ~= nil and status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
    .. " (the status is of generation " .. tostring(status.observedGeneration or "none") .. ")"
  return hs
end

-- What the connector is doing, with what a person must act on, if anything.
local function situation()
  local what = phase
  if phase == "Recovering" and status.recovery ~= nil and status.recovery.step ~= nil then
    what = "Recovering (guided recovery " .. tostring(status.recovery.requestId) .. " at step "
      .. status.recovery.step .. ")"
  end
  if isTrue(stalled) then
    return what .. ", stalled " .. said(stalled)
  end
  if ready ~= nil and ready.status ~= "True" then
    return what .. ", not ready " .. said(ready)
  end
  return what
end

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Paused (spec.paused): the operator observes and reports only; " .. situation()
  return hs
end

if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = situation()
  -- A need for action the control plane showed (RecoveryRequired, RecoveryFailed) is kept as last
  -- seen while the operator cannot reach it: say that too, as nothing a person does progresses
  -- until it answers, and no alert but NeedsRecovery's fires meanwhile. A blocker the operator sees
  -- in Kubernetes is as it says, whatever the control plane does.
  local lastSeen = stalled.reason == "RecoveryRequired" or stalled.reason == "RecoveryFailed"
  if lastSeen and healthy ~= nil and healthy.reason == "ControlPlaneUnreachable" then
    hs.message = hs.message .. "; the operator cannot reach the control plane now " .. said(healthy)
      .. ", so this is the need for action it last saw"
  end
  return hs
end

local function nextStep()
  if status.diagnosis ~= nil and status.diagnosis.nextStep ~= nil then
    return "; next step: " .. status.diagnosis.nextStep
  end
  return ""
end

if phase == "NeedsRecovery" then
  hs.status = "Degraded"
  local why = "the connector's identity is lost"
  if status.diagnosis ~= nil and status.diagnosis.reason ~= nil then
    why = status.diagnosis.reason
  end
  hs.message = "NeedsRecovery (" .. tostring(status.diagnosis and status.diagnosis.failureClass or "IdentityLoss")
    .. "): " .. why
  local recovery = status.recovery
  -- A request refused as not needed (outcome NotNeeded) is no failed recovery: the next step holds.
  if recovery ~= nil and recovery.step == "Failed" and recovery.outcome ~= "NotNeeded" then
    hs.message = hs.message .. "; guided recovery " .. tostring(recovery.requestId) .. " failed: "
      .. tostring(recovery.reason or "no reason recorded")
      .. "; set a new spec.recovery.requestId to run another"
  else
    hs.message = hs.message .. nextStep()
  end
  return hs
end

if phase == "Offline" or phase == "Degraded" then
  hs.status = "Degraded"
  if healthy ~= nil and healthy.status == "False" then
    hs.message = phase .. " " .. said(healthy) .. nextStep()
  else
    hs.message = situation() .. nextStep()
  end
  return hs
end

if phase == "Recovering" and status.recovery ~= nil and status.recovery.step ~= nil then
  hs.status = "Progressing"
  -- The operator's Reconciling message names the request and step, and says what the step waits
  -- for (a paired agent that does not beat, and what it said); an older operator's did not.
  if isTrue(reconciling) and reconciling.reason == "Recovering" then
    hs.message = "Recovering: " .. tostring(reconciling.message)
  else
    hs.message = "Recovering: guided recovery " .. tostring(status.recovery.requestId) .. " at step "
      .. status.recovery.step
  end
  return hs
end

if isTrue(reconciling) or phase == "Pending" or phase == "Enrolling" or phase == "Recovering" then
  hs.status = "Progressing"
  if isTrue(reconciling) then
    hs.message = phase .. ", reconciling " .. said(reconciling)
    if ready ~= nil and ready.status ~= "True" then
      hs.message = hs.message .. "; not ready " .. said(ready)
    end
  else
    hs.message = situation()
  end
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = phase .. ": " .. tostring(ready.message)
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = situation()
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = situation()
else
  hs.message = phase .. ": waiting for the operator's assessment (no Ready condition yet)"
end
return hs
