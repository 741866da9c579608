# A stand-in for the parts of Homebrew's formula DSL that packaging/homebrew/openclaw.rb uses,
# so the formula can be evaluated on Linux without Homebrew. It prints JSON: the launchd plist
# keys Homebrew's Service#to_plist would write for the service block (same mapping rules),
# and the commands `install` runs. A formula method this stub lacks fails loudly
# (NoMethodError), so the stub cannot silently drift from the formula.
#
# usage: ruby brew_stub.rb FORMULA.rb   (HOME decides what "~" expands to, as for brew)
#        ruby brew_stub.rb FORMULA.rb --run-test BIN_DIR
#          runs the formula's `test do` block with `bin` = BIN_DIR, in a fresh testpath that is
#          also HOME (as `brew test` does), with minimal stand-ins for its assertions.
require "json"
require "pathname"

PREFIX = Pathname("/opt/homebrew")
HOMEBREW_PREFIX = PREFIX

class StubService
  def initialize(formula)
    @formula = formula
    @plist_name = "homebrew.mxcl.#{formula.name}"
    @run = []
    @env = {}
    @keep_alive = {}
    @sockets = {}
    @settings = {}
  end

  def opt_bin = @formula.opt_bin
  def name(macos: nil, linux: nil) = (@plist_name = macos if macos)
  def run(cmd) = (@run = Array(cmd).map(&:to_s))
  def environment_variables(vars) = (@env = vars.transform_keys(&:to_s).transform_values(&:to_s))
  def keep_alive(v) = (@keep_alive = v == true || v == false ? { always: v } : v)
  def throttle_interval(v) = (@settings["ThrottleInterval"] = Integer(v))
  def process_type(v) = (@settings["ProcessType"] = v.to_s.capitalize)
  def working_dir(p) = (@settings["WorkingDirectory"] = File.expand_path(p.to_s))
  def input_path(p) = (@settings["StandardInPath"] = File.expand_path(p.to_s))
  def log_path(p) = (@settings["StandardOutPath"] = File.expand_path(p.to_s))
  def error_log_path(p) = (@settings["StandardErrorPath"] = File.expand_path(p.to_s))

  def sockets(v)
    v = { listeners: v } if v.is_a?(String)
    v.each do |n, s|
      m = s.match(%r{\A(?<type>[a-z]+)://(?<host>.+):(?<port>[0-9]+)\z}i) or raise "bad socket #{s}"
      @sockets[n.to_s] = { "SockNodeName" => m[:host], "SockServiceName" => m[:port],
                           "SockProtocol" => m[:type].upcase }
    end
  end

  # Homebrew writes one KeepAlive condition: the first of always/successful_exit/crashed/path.
  def keep_alive_plist
    return nil if @keep_alive.empty? || @keep_alive[:always] == false
    return @keep_alive[:always] if @keep_alive[:always]
    return { "SuccessfulExit" => @keep_alive[:successful_exit] } if @keep_alive.key?(:successful_exit)
    return { "Crashed" => @keep_alive[:crashed] } if @keep_alive.key?(:crashed)
    { "PathState" => @keep_alive[:path].to_s } if @keep_alive.key?(:path)
  end

  def to_h
    h = { "Label" => @plist_name, "ProgramArguments" => @run, "RunAtLoad" => true }.merge(@settings)
    h["EnvironmentVariables"] = @env unless @env.empty?
    ka = keep_alive_plist
    h["KeepAlive"] = ka unless ka.nil?
    h["Sockets"] = @sockets unless @sockets.empty?
    h
  end
end

class Formula
  class << self
    attr_reader :service_block, :fields

    def field(k, v) = ((@fields ||= {})[k] = v)
    def desc(v) = field("desc", v)
    def homepage(v) = field("homepage", v)
    def license(v) = field("license", v)
    def url(v, **) = field("url", v)
    def sha256(v) = field("sha256", v)
    def head(v, **o) = field("head", [v, o.transform_keys(&:to_s)])
    def depends_on(v) = ((@fields ||= {})["depends_on"] ||= []) << v.to_s
    def service(&b) = (@service_block = b)
    def test(&b) = (@test_block = b)
    attr_reader :test_block
  end

  attr_reader :calls

  def initialize = (@calls = [])
  def name = self.class.name.downcase
  def prefix = PREFIX/"Cellar/#{name}/HEAD"
  def bin = prefix/"bin"
  def man1 = prefix/"share/man/man1"
  def opt_bin = PREFIX/"opt/#{name}/bin"
  def std_cargo_args = ["--locked", "--root=#{prefix}", "--path=."]
  def system(*args) = @calls << ["system", *args.map(&:to_s)]

  def generate_completions_from_executable(*args)
    @calls << ["generate_completions_from_executable", *args.map(&:to_s)]
  end

  def service_hash = StubService.new(self).tap { |s| s.instance_eval(&self.class.service_block) }.to_h
end

# `man1.mkpath` must not touch the machine.
class Pathname
  def mkpath = nil
end

# The helpers a `test do` block gets in Homebrew, reduced to what they do.
module StubTest
  attr_accessor :bin, :testpath

  def free_port
    require "socket"
    s = TCPServer.new("127.0.0.1", 0)
    s.addr[1].tap { s.close }
  end

  def shell_output(cmd, status = 0)
    out = `#{cmd}`
    raise "`#{cmd}` exited #{$?.exitstatus}, expected #{status}" if $?.exitstatus != status

    out
  end

  def check(ok, msg) = (raise "assertion failed: #{msg}" unless ok)
  def assert_equal(want, got) = check(want == got, "#{want.inspect} == #{got.inspect}")
  def assert_match(re, s) = check(s.match?(re), "#{s.inspect} matches #{re.inspect}")
  def assert_path_exists(p) = check(File.exist?(p), "#{p} exists")
  def refute_empty(v) = check(!v.empty?, "#{v.inspect} is not empty")
end

path = ARGV.fetch(0)
load path
klass = Object.const_get(File.basename(path, ".rb").capitalize)
f = klass.new
if ARGV[1] == "--run-test"
  require "tmpdir"
  f.extend(StubTest)
  f.bin = Pathname(ARGV.fetch(2))
  Dir.mktmpdir("brew-test") do |dir|
    f.testpath = Pathname(dir)
    ENV["HOME"] = dir
    Dir.chdir(dir) { f.instance_eval(&klass.test_block) }
  end
  puts "formula test passed"
  exit 0
end
f.install
puts JSON.pretty_generate(
  "fields" => klass.fields, "caveats" => f.caveats, "install" => f.calls, "service" => f.service_hash,
)
