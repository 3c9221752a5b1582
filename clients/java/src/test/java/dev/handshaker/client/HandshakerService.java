package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A real handshaker service for one test class: `handshaker serve` on a free loopback port over a
 * fresh keystore holding the credentials "localhost" (DNS:localhost, IP:127.0.0.1, the default)
 * and "client" (DNS:client), both issued by the keystore's development CA.
 */
final class HandshakerService implements AutoCloseable {
  private static final long START_TIMEOUT_MS = 30_000;

  private final Path binary;
  private final Path root;
  private final Path keystore;
  private final Path log;
  private final List<String> command;
  private final int port;
  private final String address;
  private volatile Process process;

  private HandshakerService(Path binary, String... serveArgs) throws IOException, InterruptedException {
    this.binary = binary;
    this.root = Files.createTempDirectory("handshaker-java-");
    this.keystore = root.resolve("keystore");
    this.log = root.resolve("service.log");
    // Callers on loopback are the principal `local`; the policy grants it both credentials
    // and the dev-ca trust bundle.
    run("keys", "generate", "localhost", "--san", "DNS:localhost", "--san", "IP:127.0.0.1",
        "--default", "--allow", "local", "--keystore", keystore.toString());
    run("keys", "generate", "client", "--san", "DNS:client", "--allow", "local",
        "--keystore", keystore.toString());
    run("keys", "allow", "dev-ca", "local", "--trust-bundle", "--keystore", keystore.toString());
    this.port = freePort();
    this.address = "127.0.0.1:" + port;
    List<String> serve =
        new ArrayList<>(
            List.of(binary.toString(), "serve", "--listen", address, "--keystore", keystore.toString()));
    serve.addAll(List.of(serveArgs));
    this.command = List.copyOf(serve);
    launch();
  }

  private void launch() throws IOException, InterruptedException {
    this.process =
        new ProcessBuilder(command)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
            .start();
    awaitListening(port);
  }

  /**
   * Starts the service with {@code serveArgs} added to `handshaker serve`, or aborts the test
   * class when the handshaker binary is missing.
   */
  static HandshakerService start(String... serveArgs) throws IOException, InterruptedException {
    String configured = System.getenv("HANDSHAKER_BIN");
    Path binary =
        configured != null && !configured.isBlank()
            ? Path.of(configured)
            : Path.of("../../.venv/bin/handshaker").toAbsolutePath().normalize();
    if (!Files.isExecutable(binary)) {
      Assumptions.abort(
          "the handshaker service binary is missing at "
              + binary
              + ": create the project venv (scripts/setup) or set HANDSHAKER_BIN");
    }
    return new HandshakerService(binary, serveArgs);
  }

  /** The gRPC address of the service, host:port. */
  String address() {
    return address;
  }

  Path keystore() {
    return keystore;
  }

  /** The development CA certificate (PEM) that issued every credential in the keystore. */
  String devCaPem() throws IOException {
    return Files.readString(keystore.resolve("dev-ca/ca.crt"));
  }

  Path credentialDir(String name) {
    return keystore.resolve(name);
  }

  /** The certificate of a development CA of another keystore: trusts none of ours. */
  String foreignCaPem() throws IOException, InterruptedException {
    Path other = root.resolve("other-keystore");
    // `keys ca` refuses a keystore that does not exist; `keys generate` makes one, CA first.
    if (!Files.isDirectory(other)) {
      run("keys", "generate", "foreign", "--san", "DNS:foreign.test", "--keystore", other.toString());
    }
    return run("keys", "ca", "--keystore", other.toString());
  }

  /**
   * Issues one more credential from the development CA ({@code keys generate NAME ARGS...}, usable
   * by `local`) and restarts the service so that it serves it.
   */
  void addCredential(String name, String... args) throws IOException, InterruptedException {
    List<String> generate = new ArrayList<>(List.of("keys", "generate", name));
    generate.addAll(List.of(args));
    generate.addAll(List.of("--allow", "local", "--keystore", keystore.toString()));
    run(generate.toArray(new String[0]));
    kill();
    restart();
  }

  ClientConfig.Builder client() {
    return ClientConfig.builder().serviceAddress(address);
  }

  ServerConfig.Builder server() {
    return ServerConfig.builder().serviceAddress(address);
  }

  private String run(String... args) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>();
    command.add(binary.toString());
    command.addAll(List.of(args));
    Process p = new ProcessBuilder(command).redirectErrorStream(false).start();
    p.getOutputStream().close();
    byte[] err;
    byte[] out = p.getInputStream().readAllBytes();
    err = p.getErrorStream().readAllBytes();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      fail("handshaker " + String.join(" ", args) + " did not finish");
    }
    if (p.exitValue() != 0) {
      fail("handshaker " + String.join(" ", args) + " failed: " + new String(err, StandardCharsets.UTF_8));
    }
    return new String(out, StandardCharsets.UTF_8);
  }

  private static int freePort() throws IOException {
    try (ServerSocket probe = new ServerSocket()) {
      probe.bind(new InetSocketAddress("127.0.0.1", 0));
      return probe.getLocalPort();
    }
  }

  private void awaitListening(int port) throws IOException, InterruptedException {
    long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
    while (System.currentTimeMillis() < deadline) {
      if (!process.isAlive()) {
        String output = Files.readString(log);
        close();
        fail("handshaker serve exited with " + process.exitValue() + ":\n" + output);
      }
      try (Socket probe = new Socket()) {
        probe.connect(new InetSocketAddress("127.0.0.1", port), 200);
        return;
      } catch (IOException notYet) {
        Thread.sleep(100);
      }
    }
    String output = Files.readString(log);
    close();
    fail("handshaker serve did not listen on " + address + " within 30 s:\n" + output);
  }

  /** Stops the service process (SIGSTOP): it answers nothing until {@link #resume()}. */
  void pause() throws IOException, InterruptedException {
    signal("-STOP");
  }

  /** Lets a paused service run again (SIGCONT). */
  void resume() throws IOException, InterruptedException {
    signal("-CONT");
  }

  /** Kills the service process (SIGKILL): its connections break at once. */
  void kill() throws InterruptedException {
    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
  }

  /** Starts the service again, on the same address with the same keystore, after {@link #kill()}. */
  void restart() throws IOException, InterruptedException {
    launch();
  }

  private void signal(String signal) throws IOException, InterruptedException {
    Process kill = new ProcessBuilder("kill", signal, Long.toString(process.pid())).inheritIO().start();
    if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
      fail("kill " + signal + " " + process.pid() + " failed");
    }
  }

  /** The service's log so far, for failure messages. */
  String log() {
    try {
      return Files.readString(log);
    } catch (IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  @Override
  public void close() throws IOException {
    process.destroy();
    try {
      if (!process.waitFor(10, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
    try (Stream<Path> files = Files.walk(root)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }
}
