#!/usr/bin/env bash
# Static checks of the deployment files (no cluster, no systemd needed):
#   - deploy/systemd/mailpoold.service: systemd-analyze security --offline exposure <= 3.0
#   - deploy/kubernetes/*.yaml: parse, every container non-root, read-only root, no
#     privilege escalation, drop ALL, limits, probes; no :latest or untagged image;
#     the StatefulSet's grace period is longer than its --shutdown_grace plus preStop
#   - the nginx configurations (deploy/nginx, the gateway ConfigMap): nginx -t
# Prints "deploy-check: N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "deploy-check: ok   $*"; }
bad() { failed=$((failed + 1)); echo "deploy-check: FAIL $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if command -v systemd-analyze >/dev/null; then
  score=$(systemd-analyze security --offline=true "$root/deploy/systemd/mailpoold.service" 2>&1 |
    sed -nE 's/.*Overall exposure level for [^:]+: ([0-9.]+).*/\1/p')
  if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }'; then
    ok "systemd unit exposure $score <= 3.0"
  else
    bad "systemd unit exposure '${score:-?}' (want <= 3.0)"
  fi
else
  bad "systemd-analyze is not installed"
fi

/usr/bin/python3 - "$root" <<'PY' && ok "Kubernetes manifests: hardening, limits, probes, tags" || bad "Kubernetes manifests (see above)"
import glob, re, sys, yaml
root, problems = sys.argv[1], []
def dur(s): return float(re.match(r"(\d+)s$", s).group(1))
for path in sorted(glob.glob(f"{root}/deploy/kubernetes/*.yaml")):
    for doc in yaml.safe_load_all(open(path)):
        if not doc: continue
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind not in ("StatefulSet", "Deployment"): continue
        pod = doc["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        where = f"{path.split('/')[-1]} {kind}/{name}"
        if not psc.get("runAsNonRoot"): problems.append(f"{where}: runAsNonRoot")
        if pod.get("automountServiceAccountToken") is not False: problems.append(f"{where}: service account token mounted")
        for c in pod["containers"]:
            sc, image = c.get("securityContext", {}), c["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"): problems.append(f"{where}: image tag {image}")
            if sc.get("allowPrivilegeEscalation") is not False: problems.append(f"{where}: allowPrivilegeEscalation")
            if sc.get("readOnlyRootFilesystem") is not True: problems.append(f"{where}: readOnlyRootFilesystem")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]: problems.append(f"{where}: drop ALL")
            if not c.get("resources", {}).get("limits", {}).get("memory"): problems.append(f"{where}: memory limit")
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c: problems.append(f"{where}: {probe}")
            if "preStop" not in c.get("lifecycle", {}): problems.append(f"{where}: preStop")
            grace = [a for a in c.get("args", []) if a.startswith("--shutdown_grace=")]
            if grace:
                pre = 5.0
                if pod.get("terminationGracePeriodSeconds", 30) <= dur(grace[0].split("=", 1)[1]) + pre:
                    problems.append(f"{where}: terminationGracePeriodSeconds not above --shutdown_grace + preStop")
    kinds = {d["kind"] for d in yaml.safe_load_all(open(path)) if d}
    for k in ("PodDisruptionBudget", "NetworkPolicy"):
        if k not in kinds: problems.append(f"{path}: no {k}")
for p in problems: print("deploy-check:   " + p)
sys.exit(1 if problems else 0)
PY

if command -v nginx >/dev/null; then
  mkdir -p "$tmp/a" "$tmp/b"
  cp "$root/deploy/nginx/mailpool-gateway.conf" "$tmp/a/nginx.conf"
  if nginx -t -q -p "$tmp/a/" -c "$tmp/a/nginx.conf" 2>"$tmp/a.err"; then ok "nginx -t deploy/nginx/mailpool-gateway.conf"; else bad "nginx -t: $(cat "$tmp/a.err")"; fi
  # The Kubernetes gateway: pod names -> loopback, a throwaway certificate.
  /usr/bin/python3 -c 'import sys, yaml
print(next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d["kind"] == "ConfigMap")["data"]["nginx.conf"])' \
    "$root/deploy/kubernetes/gateway.yaml" |
    sed -e 's/mailpoold-[0-9]*\.mailpoold/127.0.0.1/' -e "s#/run/secrets/mailpool#$tmp/b#g" \
      -e 's/listen 50551/listen 127.0.0.1:50551/' >"$tmp/b/nginx.conf"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/b/tls.key" \
    -out "$tmp/b/tls.crt" -subj /CN=mailpoold -days 1 2>/dev/null && cp "$tmp/b/tls.crt" "$tmp/b/ca.crt"
  if nginx -t -q -p "$tmp/b/" -c "$tmp/b/nginx.conf" 2>"$tmp/b.err"; then ok "nginx -t of the Kubernetes gateway ConfigMap"; else bad "nginx -t gateway.yaml: $(cat "$tmp/b.err")"; fi
else
  bad "nginx is not installed"
fi
echo "deploy-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
