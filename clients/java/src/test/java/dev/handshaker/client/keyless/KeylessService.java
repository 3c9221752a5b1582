package dev.handshaker.client.keyless;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A real `handshaker serve` for the keyless tests, over a keystore of its own whose credentials
 * the test issues with `handshaker keys generate` and grants with `keys allow NAME local --role
 * sign --role decrypt` (callers on loopback are the principal `local`). A second keystore's
 * development CA plays a CA that nobody trusts.
 */
final class KeylessService implements AutoCloseable {
  private final Path binary;
  private final Path root;
  private final Path keystore;
  private final Path foreign;
  private final Path log;
  private final String address;
  private Process process;

  private KeylessService(Path binary) throws IOException {
    this.binary = binary;
    this.root = Files.createTempDirectory("handshaker-java-keyless-");
    this.keystore = root.resolve("keystore");
    this.foreign = root.resolve("foreign-keystore");
    this.log = root.resolve("service.log");
    this.address = "127.0.0.1:" + freePort();
  }

  /** A service binary from $HANDSHAKER_BIN (else the project venv), or the test class is aborted. */
  static KeylessService create() throws IOException {
    String configured = System.getenv("HANDSHAKER_BIN");
    Path binary = configured != null && !configured.isBlank()
        ? Path.of(configured)
        : Path.of("../../.venv/bin/handshaker").toAbsolutePath().normalize();
    if (!Files.isExecutable(binary)) {
      Assumptions.abort("the handshaker service binary is missing at " + binary
          + ": create the project venv (scripts/setup) or set HANDSHAKER_BIN");
    }
    return new KeylessService(binary);
  }

  /** `handshaker keys generate NAME --san ... --key-type TYPE` in this service's keystore. */
  void generate(String name, String keyType, String... sans) throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("keys", "generate", name, "--key-type", keyType));
    for (String san : sans) {
      args.add("--san");
      args.add(san);
    }
    args.addAll(List.of("--keystore", keystore.toString()));
    run(args.toArray(new String[0]));
  }

  /** `handshaker keys allow NAME local --role R...`. */
  void allow(String name, String... roles) throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("keys", "allow", name, "local"));
    for (String role : roles) {
      args.add("--role");
      args.add(role);
    }
    args.addAll(List.of("--keystore", keystore.toString()));
    run(args.toArray(new String[0]));
  }

  /** A credential from the foreign keystore: a CA this service does not trust issued it. */
  void generateForeign(String name, String... sans) throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("keys", "generate", name));
    for (String san : sans) {
      args.add("--san");
      args.add(san);
    }
    args.addAll(List.of("--keystore", foreign.toString()));
    run(args.toArray(new String[0]));
  }

  void start() throws IOException, InterruptedException {
    process = new ProcessBuilder(binary.toString(), "serve", "--listen", address, "--keystore", keystore.toString())
        .redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
        .start();
    int port = Integer.parseInt(address.substring(address.lastIndexOf(':') + 1));
    long deadline = System.currentTimeMillis() + 30_000;
    while (System.currentTimeMillis() < deadline) {
      if (!process.isAlive()) {
        fail("handshaker serve exited with " + process.exitValue() + ":\n" + log());
      }
      try (Socket probe = new Socket()) {
        probe.connect(new InetSocketAddress("127.0.0.1", port), 200);
        return;
      } catch (IOException notYet) {
        Thread.sleep(100);
      }
    }
    fail("handshaker serve did not listen on " + address + " within 30 s:\n" + log());
  }

  /** Stops the service process (SIGSTOP): it reads and answers nothing until {@link #resume()}. */
  void pause() throws IOException, InterruptedException {
    signal("-STOP");
  }

  /** Lets a paused service run again (SIGCONT). */
  void resume() throws IOException, InterruptedException {
    signal("-CONT");
  }

  /** Kills the service process (SIGKILL, a paused one too): the kernel closes its connections at once. */
  void kill() throws InterruptedException {
    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
  }

  /** Starts the service again after {@link #kill()}: the same address and keystore. */
  void restart() throws IOException, InterruptedException {
    start();
  }

  private void signal(String signal) throws IOException, InterruptedException {
    Process kill = new ProcessBuilder("kill", signal, Long.toString(process.pid())).inheritIO().start();
    if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
      fail("kill " + signal + " " + process.pid() + " failed");
    }
  }

  /**
   * Waits until GetCredential knows {@code name}: the service rereads the keystore each second, so
   * a credential issued while it runs appears within about that.
   */
  void awaitCredential(KeylessClient client, String name) throws InterruptedException {
    KeylessException last = null;
    for (int i = 0; i < 100; i++) {
      try {
        client.credential(name);
        return;
      } catch (KeylessException e) {
        last = e;
        Thread.sleep(100);
      }
    }
    fail("credential " + name + " did not appear: " + last);
  }

  String address() {
    return address;
  }

  /** The development CA that issued this keystore's credentials (PEM file). */
  Path devCa() {
    return keystore.resolve("dev-ca/ca.crt");
  }

  Path foreignCertFile(String name) {
    return foreign.resolve(name).resolve("tls.crt");
  }

  Path foreignKeyFile(String name) {
    return foreign.resolve(name).resolve("tls.key");
  }

  X509Certificate[] foreignChain(String name) throws Exception {
    return certificates(foreignCertFile(name));
  }

  PrivateKey foreignKey(String name) throws Exception {
    String base64 = Files.readString(foreignKeyFile(name))
        .replace("-----BEGIN PRIVATE KEY-----", "")
        .replace("-----END PRIVATE KEY-----", "")
        .replaceAll("\\s", "");
    PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(base64));
    try {
      return KeyFactory.getInstance("EC").generatePrivate(spec);
    } catch (InvalidKeySpecException notEc) {
      return KeyFactory.getInstance("RSA").generatePrivate(spec);
    }
  }

  static X509Certificate[] certificates(Path pem) throws Exception {
    return CertificateFactory.getInstance("X.509")
        .generateCertificates(new ByteArrayInputStream(Files.readAllBytes(pem)))
        .toArray(new X509Certificate[0]);
  }

  String log() {
    try {
      return Files.readString(log);
    } catch (IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  private void run(String... args) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>();
    command.add(binary.toString());
    command.addAll(List.of(args));
    Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
    p.getOutputStream().close();
    byte[] out = p.getInputStream().readAllBytes();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      fail("handshaker " + String.join(" ", args) + " did not finish");
    }
    if (p.exitValue() != 0) {
      fail("handshaker " + String.join(" ", args) + " failed: " + new String(out, StandardCharsets.UTF_8));
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket probe = new ServerSocket()) {
      probe.bind(new InetSocketAddress("127.0.0.1", 0));
      return probe.getLocalPort();
    }
  }

  @Override
  public void close() throws IOException {
    if (process != null) {
      process.destroy();
      try {
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
          process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        process.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
    try (Stream<Path> files = Files.walk(root)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }
}
