package pluginhost

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// KV limits, so one plugin cannot fill the runner's store with one call.
const (
	maxKVKeyBytes   = 512
	maxKVValueBytes = 1 << 20
)

// execute answers one action call: kv_* from the KV store, everything else
// through the permission check and then the Executor.
func (in *instance) execute(ctx context.Context, req *pluginv1.ActionRequest, launch int) *pluginv1.ActionResult {
	in.actions.Add(1)
	info, err := describeAction(req.GetAction())
	if err != nil {
		return errorResult(pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, err.Error())
	}
	if info.kv {
		return in.serveKV(ctx, req.GetAction())
	}
	label := CleanLabel(req.GetLabel())
	if d := in.perms.check(ctx, in.h.opts.Resolver, info, req.GetAction()); d != nil {
		if d.code == pluginv1.ErrorCode_ERROR_CODE_FORBIDDEN {
			in.denied.Add(1)
			in.log.Warn("action denied", zap.String("action", info.name), zap.String("chat", d.chat),
				zap.Uint64("cause_seq", req.GetCauseSeq()), zap.String("label", label), zap.String("reason", d.reason))
			in.audit(ctx, AuditEntry{Kind: AuditDenied, Action: info.name, Chat: d.chat, CauseSeq: req.GetCauseSeq(), Label: label, Reason: d.reason})
		}
		return errorResult(d.code, d.reason)
	}
	if raw, ok := req.GetAction().GetKind().(*pluginv1.Action_RawInvoke); ok {
		in.audit(ctx, AuditEntry{Kind: AuditRawInvoke, Action: info.name, CauseSeq: req.GetCauseSeq(), Label: label,
			Reason: "raw TL request " + rawMethodName(raw.RawInvoke.GetRequestTl())})
	}
	// The plugin names the call, never the source: Plugin stays the
	// instance name, whatever the label says.
	res := in.h.opts.Executor.Execute(ctx, Call{Plugin: in.spec.Name, Action: req.GetAction(), CauseSeq: req.GetCauseSeq(), Label: label, Launch: launch})
	if res == nil {
		return errorResult(pluginv1.ErrorCode_ERROR_CODE_INTERNAL, "the executor returned no result")
	}
	return res
}

func (in *instance) serveKV(ctx context.Context, a *pluginv1.Action) *pluginv1.ActionResult {
	kv := in.h.opts.KV
	if kv == nil {
		return errorResult(pluginv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "this runner has no key-value store")
	}
	checkKey := func(k string) *pluginv1.ActionResult {
		if k == "" || len(k) > maxKVKeyBytes {
			return errorResult(pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, fmt.Sprintf("kv key must be 1-%d bytes", maxKVKeyBytes))
		}
		return nil
	}
	name := in.spec.Name
	internal := func(op string, err error) *pluginv1.ActionResult {
		return errorResult(pluginv1.ErrorCode_ERROR_CODE_INTERNAL, fmt.Sprintf("kv %s: %v", op, err))
	}
	switch k := a.GetKind().(type) {
	case *pluginv1.Action_KvGet:
		if bad := checkKey(k.KvGet.GetKey()); bad != nil {
			return bad
		}
		v, found, err := kv.Get(ctx, name, k.KvGet.GetKey())
		if err != nil {
			return internal("get", err)
		}
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_KvValue{KvValue: &pluginv1.KVValue{Value: v, Found: found}}}
	case *pluginv1.Action_KvSet:
		if bad := checkKey(k.KvSet.GetKey()); bad != nil {
			return bad
		}
		if len(k.KvSet.GetValue()) > maxKVValueBytes {
			return errorResult(pluginv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, fmt.Sprintf("kv value is over %d bytes", maxKVValueBytes))
		}
		if err := kv.Set(ctx, name, k.KvSet.GetKey(), k.KvSet.GetValue()); err != nil {
			return internal("set", err)
		}
	case *pluginv1.Action_KvDelete:
		if bad := checkKey(k.KvDelete.GetKey()); bad != nil {
			return bad
		}
		if err := kv.Delete(ctx, name, k.KvDelete.GetKey()); err != nil {
			return internal("delete", err)
		}
	case *pluginv1.Action_KvList:
		keys, err := kv.List(ctx, name, k.KvList.GetPrefix())
		if err != nil {
			return internal("list", err)
		}
		return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_KvKeys{KvKeys: &pluginv1.KVKeys{Keys: keys}}}
	}
	return &pluginv1.ActionResult{Result: &pluginv1.ActionResult_Ok{Ok: &pluginv1.Ok{}}}
}
