#!/usr/bin/env python3
"""ha-check: run a real, headless Home Assistant core against a local MQTT broker
and dump what MQTT discovery produced (states + entity/device registry + HA's
MQTT warnings/errors) to JSON.  Stdlib only; HA lives in a venv.

  ha-check.py --setup                       # one-off: create venv, install HA (+runtime deps)
  ha-check.py --broker-port 1883 --out states.json --wait-entities 3 --timeout 180
  ha-check.py --selftest                    # starts its own mosquitto, proves the round trip

Exit codes: 0 ok, 1 timeout / expectation failed / discovery errors (with
--fail-on-discovery-error), 2 setup problem (no venv, HA crashed, ...).
Pinned for Home Assistant 2024.3.3, the last release that supports Python 3.11.
"""
import argparse, json, os, shutil, signal, socket, subprocess, sys, tempfile, time, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
HA_VERSION = "2024.3.3"
# paho/janus: mqtt + file_upload manifests. The rest HA would otherwise pip-install at
# first start (frontend, backup, hardware, image_upload, camera, recorder helpers are
# set up unconditionally in 2024.3 even without default_config).
RUNTIME_REQS = ["paho-mqtt==1.6.1", "janus==1.0.0", "SQLAlchemy==2.0.27", "fnv-hash-fast==0.5.0",
                "psutil-home-assistant==0.0.1", "Pillow==10.2.0", "home-assistant-frontend==20240307.0",
                "securetar==2024.2.1", "PyTurboJPEG==1.7.1"]

CONFIGURATION_YAML = """\
homeassistant:
  name: ha-check
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: US
http:
  server_host: 127.0.0.1
  server_port: {http_port}
api:
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
    homeassistant.bootstrap: info
probe:
  path: {probe_path}
  interval: {interval}
"""

PROBE_MANIFEST = {"domain": "probe", "name": "ha-check probe", "version": "0.1.0",
                  "documentation": "https://example.invalid", "codeowners": [],
                  "requirements": [], "dependencies": [], "iot_class": "local_push"}

PROBE_INIT = '''\
"""ha-check probe: periodically dump states, registries and WARNING+ log records to JSON."""
import json, logging, os, time
from collections import deque
from datetime import timedelta
from homeassistant.const import __version__
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.event import async_track_time_interval

DOMAIN = "probe"
_RECORDS = deque(maxlen=1000)


class _Capture(logging.Handler):
    def emit(self, record):
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            msg = str(record.msg)
        _RECORDS.append({"time": record.created, "level": record.levelname,
                         "logger": record.name, "message": msg})


async def async_setup(hass: HomeAssistant, config):
    conf = config.get(DOMAIN) or {}
    path = conf.get("path") or hass.config.path("probe.json")
    interval = float(conf.get("interval", 1.0))
    logging.getLogger("homeassistant").addHandler(_Capture(level=logging.WARNING))

    def _write(data):
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, indent=1, default=str, sort_keys=True)
        os.replace(path + ".tmp", path)

    def _snapshot():
        client = getattr(hass.data.get("mqtt"), "client", None)
        return {
            "time": time.time(), "ha_version": __version__, "ha_state": str(hass.state),
            "mqtt_connected": bool(getattr(client, "connected", False)),
            "states": [s.as_dict() for s in hass.states.async_all()],
            "entities": [{
                "entity_id": e.entity_id, "unique_id": e.unique_id, "platform": e.platform,
                "device_id": e.device_id, "config_entry_id": e.config_entry_id,
                "disabled_by": e.disabled_by, "name": e.name, "original_name": e.original_name,
                "has_entity_name": e.has_entity_name, "device_class": e.device_class,
                "original_device_class": e.original_device_class, "icon": e.original_icon,
                "unit_of_measurement": e.unit_of_measurement,
                "entity_category": e.entity_category} for e in er.async_get(hass).entities.values()],
            "devices": [{
                "id": d.id, "identifiers": sorted(list(i) for i in d.identifiers),
                "connections": sorted(list(c) for c in d.connections), "name": d.name,
                "model": d.model, "manufacturer": d.manufacturer, "sw_version": d.sw_version,
                "hw_version": d.hw_version, "via_device_id": d.via_device_id,
                "config_entries": sorted(d.config_entries)} for d in dr.async_get(hass).devices.values()],
            "log": list(_RECORDS),
        }

    async def _dump(*_):
        await hass.async_add_executor_job(_write, _snapshot())

    async def _service(call: ServiceCall):
        await _dump()

    hass.services.async_register(DOMAIN, "dump", _service)
    async_track_time_interval(hass, _dump, timedelta(seconds=interval), cancel_on_shutdown=True)
    hass.bus.async_listen_once("homeassistant_started", _dump)
    return True
'''


def mqtt_config_entry(host, port, prefix="homeassistant"):
    """core.config_entries for HA 2024.3 (storage v1.1; mqtt ConfigFlow VERSION 1).
    In 2024.3 every broker/discovery/birth setting lives in entry.data."""
    return {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [{
        "entry_id": uuid.uuid4().hex, "version": 1, "minor_version": 1, "domain": "mqtt",
        "title": host, "source": "user", "unique_id": None, "disabled_by": None,
        "pref_disable_new_entities": False, "pref_disable_polling": False, "options": {},
        "data": {"broker": host, "port": port, "discovery": True, "discovery_prefix": prefix,
                 "birth_message": {"topic": f"{prefix}/status", "payload": "online", "qos": 0, "retain": False},
                 "will_message": {"topic": f"{prefix}/status", "payload": "offline", "qos": 0, "retain": False}},
    }]}}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[ha-check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_config(cfg, broker_host, broker_port, http_port, probe_path, interval=1.0, prefix="homeassistant"):
    os.makedirs(os.path.join(cfg, ".storage"), exist_ok=True)
    comp = os.path.join(cfg, "custom_components", "probe")
    os.makedirs(comp, exist_ok=True)
    with open(os.path.join(cfg, "configuration.yaml"), "w") as f:
        f.write(CONFIGURATION_YAML.format(http_port=http_port, probe_path=probe_path, interval=interval))
    with open(os.path.join(cfg, ".storage", "core.config_entries"), "w") as f:
        json.dump(mqtt_config_entry(broker_host, broker_port, prefix), f, indent=1)
    with open(os.path.join(comp, "manifest.json"), "w") as f:
        json.dump(PROBE_MANIFEST, f, indent=1)
    with open(os.path.join(comp, "__init__.py"), "w") as f:
        f.write(PROBE_INIT)


def read_probe(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mqtt_view(snap):
    """Join mqtt entity registry entries with their state and device."""
    states = {s["entity_id"]: s for s in snap["states"]}
    devices = {d["id"]: d for d in snap["devices"]}
    out = []
    for e in snap["entities"]:
        if e["platform"] != "mqtt":
            continue
        s = states.get(e["entity_id"]) or {}
        out.append({**e, "state": s.get("state"), "attributes": s.get("attributes"),
                    "device": devices.get(e["device_id"])})
    return sorted(out, key=lambda x: x["entity_id"])


def discovery_errors(snap):
    return [r for r in snap.get("log", []) if r["logger"].startswith("homeassistant.components.mqtt")
            and r["level"] in ("WARNING", "ERROR", "CRITICAL")]


class HA:
    def __init__(self, args):
        self.a = args
        self.hass = args.hass or os.path.join(args.venv, "bin", "hass")
        if not os.access(self.hass, os.X_OK):
            log(f"no hass at {self.hass}; run `{sys.argv[0]} --setup` first")
            sys.exit(2)
        self.dir = args.keep_dir or tempfile.mkdtemp(prefix="ha-check-")
        self.cfg = os.path.join(self.dir, "config")
        self.probe = os.path.join(self.dir, "probe.json")
        self.logpath = os.path.join(self.dir, "hass.log")
        self.proc = self.sub = None
        self.t = {}

    def start(self):
        a = self.a
        if os.path.exists(self.cfg):
            shutil.rmtree(self.cfg)
        write_config(self.cfg, a.broker_host, a.broker_port, a.http_port or free_port(), self.probe,
                     a.interval, a.prefix)
        self.birth = os.path.join(self.dir, "birth.txt")
        if shutil.which("mosquitto_sub"):  # subscribe before HA starts: birth is not retained
            self.sub = subprocess.Popen(["mosquitto_sub", "-h", a.broker_host, "-p", str(a.broker_port),
                                         "-t", f"{a.prefix}/status"], stdout=open(self.birth, "w"),
                                        stderr=subprocess.DEVNULL)
            time.sleep(0.3)
        cmd = [self.hass, "-c", self.cfg, "--log-no-color"] + (["--skip-pip"] if a.skip_pip else [])
        log(f"starting {' '.join(cmd)} (log: {self.logpath})")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=open(self.logpath, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def elapsed(self):
        return round(time.monotonic() - self.t0, 2)

    def alive(self):
        return self.proc.poll() is None

    def birth_seen(self):
        try:
            return "online" in open(self.birth).read().split()
        except OSError:
            return False

    def snap(self, newer_than=0.0):
        s = read_probe(self.probe)
        return s if s and s["time"] > newer_than else None

    def wait(self, pred, deadline, newer_than=0.0):
        """Poll probe snapshots until pred(snap) is true; returns snap or None."""
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"hass exited with rc={self.proc.returncode}; see {self.logpath}")
            s = self.snap(newer_than)
            if s and pred(s):
                return s
            time.sleep(0.25)
        return None

    def wait_ready(self, deadline):
        use_birth = self.sub is not None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"hass exited with rc={self.proc.returncode}; see {self.logpath}")
            s = self.snap()
            if s and "running_s" not in self.t and s["ha_state"] == "RUNNING":
                self.t["running_s"] = self.elapsed()
            if use_birth and self.birth_seen():
                self.t["birth_s"] = self.elapsed()
                return True
            if not use_birth and s and s["ha_state"] == "RUNNING" and s["mqtt_connected"]:
                time.sleep(3)  # no birth observable: allow the discovery cooldown to pass
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        if self.sub:
            self.sub.terminate()
        if not self.proc or not self.alive():
            return
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait()
            log("hass did not stop within 60s; killed")
        self.t["stop_s"] = round(time.monotonic() - t, 2)
        self.t["hass_rc"] = rc


def run_check(a):
    ha = HA(a)
    ha.start()
    deadline = time.monotonic() + a.timeout
    result, rc = {}, 0
    try:
        ready = ha.wait_ready(deadline)
        log(f"ready={ready} timings={ha.t}")
        if not ready:
            s = ha.snap() or {}
            log(f"HA not ready: ha_state={s.get('ha_state')} mqtt_connected={s.get('mqtt_connected')}")
        snap = ha.wait(lambda s: len(mqtt_view(s)) >= a.wait_entities, deadline) if ready else None
        if snap is None:
            log(f"timeout: fewer than {a.wait_entities} mqtt entities after {a.timeout}s")
            rc = 1
        else:
            ha.t["entities_s"] = ha.elapsed()
            time.sleep(a.settle)  # let retained state/availability messages land
        snap = ha.wait(lambda s: True, time.monotonic() + 10, newer_than=time.time()) or ha.snap() or {}
        if snap:
            result = {"ha_version": snap["ha_version"], "mqtt_connected": snap["mqtt_connected"],
                      "birth_seen": ha.birth_seen(), "mqtt_entities": mqtt_view(snap),
                      "discovery_errors": discovery_errors(snap), **snap}
        for exp in a.expect:
            eid, _, want = exp.partition("=")
            got = next((e["state"] for e in result.get("mqtt_entities", []) if e["entity_id"] == eid), None)
            if got != want:
                log(f"EXPECT FAILED {eid}: want {want!r}, got {got!r}")
                rc = 1
        if a.fail_on_discovery_error and result.get("discovery_errors"):
            log(f"{len(result['discovery_errors'])} MQTT discovery warning/error log records")
            rc = 1
    except RuntimeError as e:
        log(str(e))
        rc = 2
    finally:
        ha.stop()
    result["timings"] = ha.t
    result["work_dir"] = ha.dir
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1, default=str)
    log(f"wrote {a.out}: {len(result.get('mqtt_entities', []))} mqtt entities, "
        f"{len(result.get('discovery_errors', []))} discovery errors, timings={ha.t}")
    if a.log_out:
        shutil.copy(ha.logpath, a.log_out)
    if not a.keep_dir and rc == 0:
        shutil.rmtree(ha.dir, ignore_errors=True)
    return rc


def setup(a):
    """Creates VENV with Home Assistant and what it installs at run time; a no-op when VENV
    already holds exactly these pins (recorded in VENV/.ha-check-pins once installed)."""
    pins = "\n".join([f"homeassistant=={HA_VERSION}"] + RUNTIME_REQS) + "\n"
    stamp = os.path.join(a.venv, ".ha-check-pins")
    try:
        with open(stamp) as f:
            if f.read() == pins and os.path.exists(os.path.join(a.venv, "bin", "hass")):
                return 0
    except OSError:
        pass
    t = time.monotonic()
    log(f"creating {a.venv} with Home Assistant {HA_VERSION} (a few minutes, about 700 MB)")
    shutil.rmtree(a.venv, ignore_errors=True)
    subprocess.check_call([sys.executable, "-m", "venv", a.venv])
    pip = [os.path.join(a.venv, "bin", "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    subprocess.check_call(pip + [f"homeassistant=={HA_VERSION}"] + RUNTIME_REQS)
    with open(stamp, "w") as f:
        f.write(pins)
    log(f"venv {a.venv} ready in {time.monotonic() - t:.0f}s")
    return 0


SELFTEST_CFG = {"name": "label", "unique_id": "edgeinfer_dev1_cam_label", "object_id": "dev1_cam_label",
                "state_topic": "edgeinfer/dev1/state/cam", "value_template": "{{ value_json.label }}",
                "availability_topic": "edgeinfer/dev1/status",
                "availability_template": "{{ 'online' if value_json.online else 'offline' }}",
                "device": {"identifiers": ["edgeinfer_dev1"], "name": "dev1", "manufacturer": "edgeinfer",
                           "model": "edgeinfer", "sw_version": "0.1.0"},
                "origin": {"name": "edgeinfer", "sw_version": "0.1.0"}}


def selftest(a):
    for b in ("mosquitto_pub", "mosquitto_sub"):
        if not shutil.which(b):
            log(f"{b} missing (apt-get install mosquitto-clients)")
            return 2
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    a.broker_port = a.broker_port or free_port()
    broker = subprocess.Popen([mosq, "-p", str(a.broker_port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)

    def pub(topic, payload, retain=True):
        cmd = ["mosquitto_pub", "-h", a.broker_host, "-p", str(a.broker_port), "-t", topic]
        cmd += (["-r"] if retain else []) + (["-n"] if payload is None else ["-m", payload])
        subprocess.check_call(cmd)

    base = "homeassistant/sensor/edgeinfer_dev1"
    pub(f"{base}/cam_label/config", json.dumps(SELFTEST_CFG))
    pub("edgeinfer/dev1/state/cam", json.dumps({"label": "cat", "score": 0.9}))
    pub("edgeinfer/dev1/status", json.dumps({"online": True}))
    ha = HA(a)
    ok = True

    def step(name, action, pred, secs=15):
        nonlocal ok
        t = time.time()
        action()
        s = ha.wait(pred, time.monotonic() + secs, newer_than=t + 0.3)
        log(f"{'PASS' if s else 'FAIL'} {name}")
        ok = ok and bool(s)
        return s

    def ent(s, eid="sensor.dev1_cam_label"):
        return next((e for e in mqtt_view(s) if e["entity_id"] == eid), None)

    try:
        ha.start()
        if not ha.wait_ready(time.monotonic() + a.timeout):
            log("FAIL: HA not ready")
            return 1
        log(f"HA ready, timings={ha.t}")
        s = step("entity appears with state 'cat' and device",
                 lambda: None, lambda s: (e := ent(s)) and e["state"] == "cat"
                 and e["unique_id"] == "edgeinfer_dev1_cam_label" and e["device"]["sw_version"] == "0.1.0")
        if s:
            print(json.dumps(ent(s), indent=1, default=str))
        step("availability offline -> unavailable", lambda: pub("edgeinfer/dev1/status", '{"online":false}'),
             lambda s: (e := ent(s)) and e["state"] == "unavailable")
        step("availability online -> state back", lambda: pub("edgeinfer/dev1/status", '{"online":true}'),
             lambda s: (e := ent(s)) and e["state"] == "cat")
        step("empty retained config removes entity and device", lambda: pub(f"{base}/cam_label/config", None),
             lambda s: ent(s) is None and not any(d["name"] == "dev1" for d in s["devices"]))
        bad = {"name": "bad", "unique_id": "edgeinfer_dev1_bad", "state_topic": "x", "state_class": "bogus"}
        s = step("invalid config rejected + logged", lambda: pub(f"{base}/bad/config", json.dumps(bad)),
                 lambda s: any("bad/config" in r["message"] for r in discovery_errors(s)))
        if s:
            print(json.dumps(discovery_errors(s), indent=1))
        pub(f"{base}/bad/config", None)
    except RuntimeError as e:
        log(str(e))
        ok = False
    finally:
        ha.stop()
        broker.terminate()
        broker.wait()
    log(f"selftest {'PASSED' if ok else 'FAILED'}; timings={ha.t}; work dir {ha.dir}")
    if ok and not a.keep_dir:
        shutil.rmtree(ha.dir, ignore_errors=True)
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker-port", type=int)
    p.add_argument("--broker-host", default="127.0.0.1")
    p.add_argument("--prefix", default="homeassistant", help="discovery prefix")
    p.add_argument("--out", default="states.json")
    p.add_argument("--wait-entities", type=int, default=1, help="min number of mqtt entities")
    p.add_argument("--timeout", type=float, default=180, help="seconds for start + entities")
    p.add_argument("--settle", type=float, default=2.0, help="seconds after K entities before dump")
    p.add_argument("--expect", action="append", default=[], metavar="ENTITY_ID=STATE")
    p.add_argument("--fail-on-discovery-error", action="store_true")
    p.add_argument("--venv", default=os.environ.get("HA_CHECK_VENV", os.path.join(HERE, "..", ".venv-ha")))
    p.add_argument("--hass", help="path to hass (default: VENV/bin/hass)")
    p.add_argument("--skip-pip", action="store_true", help="pass --skip-pip to hass (needs --setup deps)")
    p.add_argument("--http-port", type=int, help="default: a free port")
    p.add_argument("--interval", type=float, default=0.5, help="probe dump interval")
    p.add_argument("--keep-dir", help="work dir to use and keep (default: temp, removed on success)")
    p.add_argument("--log-out", help="copy HA's log here")
    p.add_argument("--setup", action="store_true", help="create VENV with HA + runtime requirements")
    p.add_argument("--selftest", action="store_true", help="own broker; discovery/availability/removal/error")
    p.add_argument("--write-config", metavar="DIR", help="only write the HA config dir and exit")
    a = p.parse_args()
    if a.setup:
        return setup(a)
    if a.selftest:
        return selftest(a)
    if a.broker_port is None:
        p.error("--broker-port is required")
    if a.write_config:
        write_config(a.write_config, a.broker_host, a.broker_port, a.http_port or 8123,
                     os.path.abspath(os.path.join(a.write_config, "probe.json")), a.interval, a.prefix)
        return 0
    return run_check(a)


if __name__ == "__main__":
    sys.exit(main())
