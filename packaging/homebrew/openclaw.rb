# Homebrew formula for openclaw, built from source. Install it from a checkout with
#   brew install --HEAD --formula ./packaging/homebrew/openclaw.rb
# then start the LaunchAgent with `brew services start openclaw`.
#
# Stable `url`/`sha256` lines are added by the release process: a tag tarball's checksum does
# not exist before the tag does.
#
# The service block mirrors plists/ai.openclaw.gateway.plist (what `openclaw gateway install`
# writes) as far as Homebrew's service DSL reaches. It uses the same label, so `brew services`
# and `openclaw gateway status|restart|stop` act on one job; use one installer or the other,
# not both (`openclaw gateway install --force` takes the job over from brew).
#
# What Homebrew's service DSL cannot express (checked against Homebrew's Service#to_plist):
# - KeepAlive with two conditions: the plist has {SuccessfulExit = false; Crashed = true};
#   the DSL writes only the first key of a keep_alive hash. SuccessfulExit = false alone
#   still respawns after a crash (a signal death is not a successful exit) and still leaves a
#   gateway that refused its config (exit 0 under launchd) stopped.
# - A second listener under one socket name: the plist's "Listeners" holds 127.0.0.1 AND ::1;
#   the DSL takes one address per name, so under brew services the gateway listens on
#   127.0.0.1:18789 only (IPv6 loopback clients get "connection refused"). SockFamily /
#   SockType / SockPassive are not writable either; their defaults (stream, passive, family
#   from the literal address) match the plist's values.
# - ExitTimeOut (plist: 20 s drain + grace before SIGKILL): launchd's default applies.
# - Umask (077) and SoftResourceLimits/HardResourceLimits NumberOfFiles (10240): the DSL has
#   no keys for them, so the command below runs through /bin/sh to set both (soft limit only:
#   raising the hard limit needs root) and to create the state dir 0700 and make it the
#   working directory (the DSL's working_dir would be created by brew with mode 0755).
# - Comment, and explicit HOME / OPENCLAW_STATE_DIR / OPENCLAW_CONFIG_PATH environment: brew
#   renders one plist for whoever runs it, so these come from launchd's HOME at run time
#   (the gateway derives ~/.openclaw and ~/.openclaw/openclaw.json from it, the same values).
# Homebrew adds LimitLoadToSessionType, which the plist does not set.
class Openclaw < Formula
  desc "Protocol v4 gateway and CLI for OpenClaw, with launchd socket activation"
  homepage "https://github.com/openclaw/openclaw-gateway-rs"
  license "MIT"
  head "https://github.com/openclaw/openclaw-gateway-rs.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args
    generate_completions_from_executable(bin/"openclaw", "completions")
    man1.mkpath
    system bin/"openclaw", "man", "--out-dir", man1
  end

  def caveats
    <<~EOS
      `brew services start openclaw` runs the gateway on 127.0.0.1:18789; its first start
      creates ~/.openclaw/openclaw.json (mode 0600) with a generated token:
        openclaw gateway auth-token
      Logs: ~/Library/Logs/openclaw/gateway.log
    EOS
  end

  service do
    name macos: "ai.openclaw.gateway"
    # umask 077, open-files soft limit, a 0700 state dir as working directory, then exec the
    # gateway (same pid: launchd's sockets and KeepAlive apply to it). --init creates the
    # config and token on the first start; it never touches an existing config. A state dir
    # that cannot be created exits 0, like a refused config under launchd: not respawned.
    run [
      "/bin/sh", "-c",
      'umask 077; ulimit -S -n 10240 2>/dev/null; ' \
      'mkdir -p "$HOME/.openclaw" && cd "$HOME/.openclaw" || ' \
      '{ echo "openclaw: cannot use $HOME/.openclaw as the state directory" >&2; exit 0; }; ' \
      'exec "$@"',
      "openclaw-gateway",
      opt_bin/"openclaw", "gateway", "run", "--init", "--port", "18789"
    ]
    environment_variables PATH:                    "#{HOMEBREW_PREFIX}/bin:#{HOMEBREW_PREFIX}/sbin:" \
                                                   "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                          OPENCLAW_LAUNCHD_LABEL:  "ai.openclaw.gateway",
                          OPENCLAW_SERVICE_MARKER: "openclaw",
                          OPENCLAW_SERVICE_KIND:   "gateway"
    keep_alive successful_exit: false
    throttle_interval 10
    process_type :interactive
    input_path "/dev/null"
    log_path "~/Library/Logs/openclaw/gateway.log"
    error_log_path "~/Library/Logs/openclaw/gateway.log"
    sockets Listeners: "tcp://127.0.0.1:18789"
  end

  test do
    port = free_port
    ENV["OPENCLAW_LOG_DIR"] = (testpath/"logs").to_s
    pid = spawn "#{bin}/openclaw", "gateway", "run", "--init", "--port", port.to_s
    begin
      health = nil
      50.times do
        health = shell_output("curl -fsS http://127.0.0.1:#{port}/healthz 2>/dev/null || true")
        break unless health.empty?

        sleep 0.2
      end
      refute_empty health
      config = testpath/".openclaw/openclaw.json"
      assert_path_exists config
      assert_equal "600", format("%o", config.stat.mode & 0777)
    ensure
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
    assert_match "openclaw", shell_output("#{bin}/openclaw --version")
  end
end
