#!/usr/bin/env python3
"""Regenerates the committed seed corpora under fuzz/corpus/<target>/ (data, not code).

Sources: the protocol transcripts (client frames; `<GATEWAY_TOKEN>` becomes the harness token
so seeds reach the post-auth paths), the launchctl fixtures, the golden plist (XML and a binary
re-encoding), config shapes from the specs, and hand-written edge cases. Usage:
    python3 fuzz/seed.py [TRANSCRIPTS_DIR]
Without a transcripts directory only the repository-local seeds are rewritten.
"""
import glob, hashlib, json, os, plistlib, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
TOKEN = "fuzz-token-0123456789"


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def transcripts(tdir):
    for path in sorted(glob.glob(os.path.join(tdir, "*.jsonl"))):
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            if rec.get("dir") != "c2s":
                continue
            fr = rec.get("frame", {})
            if "_note" in fr or "_close" in fr:
                continue
            if "_raw" in fr:
                yield fr["_raw"]
                continue
            yield compact(fr).replace("<GATEWAY_TOKEN>", TOKEN)


def main():
    tdir = sys.argv[1] if len(sys.argv) > 1 else None
    if tdir:
        for text in transcripts(tdir):
            put("frame_preauth", text)
            put("frame_postauth", text)
            try:
                fr = json.loads(text)
            except ValueError:
                continue
            if isinstance(fr, dict) and fr.get("method") == "connect":
                put("connect_params", compact(fr.get("params")))
    # Hand-written frame edge cases (protocol.md §1, §2.7).
    edge = [
        "", "null", "[]", "{}", '"req"', "1e999", "{\"type\":\"req\"}",
        '{"type":"req","id":"","method":"connect"}',
        '{"type":"req","id":"x","method":"connect","params":null}',
        '{"type":"req","id":"x","method":"connect","params":{"minProtocol":4.5,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli"}}}',
        '{"type":"req","id":"x","method":"connect","params":{"minProtocol":-1e308,"maxProtocol":1e308,"client":{"id":"cli","version":"1","platform":"linux","mode":"probe"},"auth":{"password":"%s"}}}' % TOKEN,
        '{"type":"req","id":"x","method":"connect","params":{"minProtocol":4,"maxProtocol":4,"client":{"id":"openclaw-control-ui","version":"1","platform":"web","mode":"ui"},"auth":{"token":"%s"},"role":"node","device":{"id":"a","publicKey":"b","signature":"c","signedAt":1,"nonce":"n"}}}' % TOKEN,
        '{"type":"req","id":"x","method":"connect","params":{"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli","buildId":"%s"}}}' % ("é" * 97),
        '{"type":"req","id":"l","method":"logs.tail","params":{"cursor":-5,"limit":-1,"maxBytes":1e300}}',
        '{"type":"req","id":"s","method":"sessions.list","params":{"limit":18446744073709551615}}',
        '{"type":"req","id":"t","method":"health","traceparent":"%s"}' % ("0" * 129),
        '{"type":"req","id":"u","method":"node.event","params":{}}',
        '{"type":"req","id":"\\u0000","method":"\\ud800"}',
        "[" * 200 + "]" * 200,
        '{"type":"req","id":"d","method":"config.get","params":' + "[" * 120 + "]" * 120 + "}",
    ]
    for e in edge:
        put("frame_preauth", e)
        put("frame_postauth", e)
    put("connect_params", '{"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"2026.9.6","platform":"linux","mode":"cli"},"permissions":{"a/b~c":true},"modelCatalog":{"x":1}}')
    # Config shapes (lifecycle.md §8, protocol.md appendix A, README), JSON5 features, errors.
    configs = [
        "{}", "", "  ", "[]", "null", "{gateway:null}",
        "{ // comment\n gateway: { mode: 'local', port: 18790, bind: 'loopback', auth: { mode: 'token', token: 'abc' }, },\n}",
        '{"gateway":{"mode":"local","port":18790,"bind":"loopback","auth":{"mode":"token"},"http":{"endpoints":{"chatCompletions":{"enabled":true}}}},"agents":{"defaults":{"model":{"primary":"fake/fake-1"}}},"models":{"mode":"merge","providers":{"fake":{"baseUrl":"http://127.0.0.1:18799/v1","apiKey":"fake-key","api":"openai-completions","models":[{"id":"fake-1","name":"Fake 1","reasoning":false,"input":["text"],"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0},"contextWindow":128000,"maxTokens":4096}]}}}}',
        "{gateway:{mode:'local',bind:'lan',auth:{mode:'none'}}}",
        "{gateway:{auth:{token:{source:'env',id:'OPENCLAW_FUZZ_UNSET'}}}}",
        "{gateway:{auth:{token:'${OPENCLAW_FUZZ_UNSET}',password:'pw'}}}",
        "{gateway:{auth:{mode:'password',password:'longer-secret-value'},controlUi:{allowedOrigins:['*']},reload:{mode:'off'}}}",
        "{gateway:{port:70000}}", "{gateway:{port:'x'}}", "{gateway:{mode:1}}",
        "{gateway:{auth:{rateLimit:{maxAttempts:0,windowMs:-1}}}}",
        "{agents:{default:'ops',entries:{ops:{workspace:'~/w',model:'m'}}}}",
        "{a:0x1F, b:+Infinity, c:NaN, d:.5, e:'multi\\\nline', f:[1,2,],}",
        "{\n gateway: {\n mode: 'local'\n port: 1 }\n}",
        "{gateway:{mode:'local'}} trailing",
        "{'\\u0000':1, \"\\ud800\":2}",
        "[" * 300 + "]" * 300,
    ]
    for c in configs:
        put("config_load", c)
    # /tools/invoke bodies (http-captures.md).
    for b in ['{"tool":"sessions_list","args":{}}', '{"tool":"nonexistent_tool"}', '{"tool":"exec"}',
              "notjson", '{"name":"x","action":"y","args":{"a":[1,2]},"sessionKey":"agent:main:main","dryRun":true}',
              '{"tool":""}', '{"tool":1}', "", "[]", '{"tool":"' + "x" * 1000 + '"}']:
        put("http_tools_invoke", b)
    # launchctl print fixtures and a truncated one.
    for p in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "launchctl", "*.txt"))):
        data = open(p, "rb").read()
        put("launchctl_print", data)
        put("launchctl_print", data[: len(data) // 2])
    put("launchctl_print", "}\n}\n{\n\tstate = running\n\tlast terminating signal = :\n\tlast exit code = 99999999999\n")
    # Plists: the golden file (XML), a binary re-encoding, broken variants.
    for p in sorted(glob.glob(os.path.join(ROOT, "plists", "*.plist"))):
        data = open(p, "rb").read()
        put("plist_definition", data)
        put("plist_definition", plistlib.dumps(plistlib.loads(data), fmt=plistlib.FMT_BINARY))
        put("plist_definition", data[: len(data) // 3])
    put("plist_definition", plistlib.dumps([1, "a", {"b": True}], fmt=plistlib.FMT_BINARY))
    put("plist_definition", b"bplist00")


if __name__ == "__main__":
    main()
