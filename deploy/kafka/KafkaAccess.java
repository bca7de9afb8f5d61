// Users and ACLs of the local SASL broker (kafka.sh start with KAFKA_SASL=scram), through
// the Kafka admin client of the cached jars. Run by kafka.sh as a single-file program:
//
//   java -cp 'libs/*' KafkaAccess.java BOOTSTRAP ADMIN_USER SPEC_FILE TIMEOUT_SECONDS
//
// The admin's password comes from the environment (KAFKA_ACCESS_ADMIN_PASSWORD), never the
// command line (other users of the machine can read that). SPEC_FILE lines:
//
//   user  NAME PASSWORD                                  SCRAM-SHA-512 credential (upsert)
//   allow NAME OPERATION RESOURCE_TYPE PATTERN RESOURCE  an ALLOW ACL for User:NAME, any host
//
// Both are idempotent, so every start applies the whole spec again.
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class KafkaAccess {
  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      fail("usage: KafkaAccess BOOTSTRAP ADMIN_USER SPEC_FILE TIMEOUT_SECONDS");
    }
    String bootstrap = args[0];
    String adminUser = args[1];
    Path spec = Path.of(args[2]);
    long timeoutSeconds = Long.parseLong(args[3]);
    String adminPassword = System.getenv("KAFKA_ACCESS_ADMIN_PASSWORD");
    if (adminPassword == null || adminPassword.isEmpty()) {
      fail("KAFKA_ACCESS_ADMIN_PASSWORD is not set");
    }

    List<UserScramCredentialAlteration> users = new ArrayList<>();
    List<AclBinding> acls = new ArrayList<>();
    for (String raw : Files.readAllLines(spec)) {
      String line = raw.strip();
      if (line.isEmpty() || line.startsWith("#")) {
        continue;
      }
      String[] f = line.split("\\s+");
      if (f[0].equals("user") && f.length == 3) {
        users.add(
            new UserScramCredentialUpsertion(
                f[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), f[2]));
      } else if (f[0].equals("allow") && f.length == 6) {
        AclOperation operation = AclOperation.fromString(constant(f[2]));
        ResourceType type = ResourceType.fromString(constant(f[3]));
        PatternType pattern = PatternType.fromString(constant(f[4]));
        if (operation == AclOperation.UNKNOWN
            || type == ResourceType.UNKNOWN
            || pattern == PatternType.UNKNOWN) {
          fail("unknown operation, resource type or pattern in " + spec + ": " + line);
        }
        acls.add(
            new AclBinding(
                new ResourcePattern(type, f[5], pattern),
                new AccessControlEntry(
                    "User:" + f[1], "*", operation, AclPermissionType.ALLOW)));
      } else {
        fail("cannot read this line of " + spec + " (see KafkaAccess.java): " + f[0] + " ...");
      }
    }

    Properties config = new Properties();
    config.put("bootstrap.servers", bootstrap);
    config.put("security.protocol", "SASL_PLAINTEXT");
    config.put("sasl.mechanism", "SCRAM-SHA-512");
    config.put(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + adminUser
            + "\" password=\""
            + adminPassword
            + "\";");
    config.put("request.timeout.ms", "5000");
    config.put("default.api.timeout.ms", "10000");
    try (Admin admin = Admin.create(config)) {
      waitForBroker(admin, timeoutSeconds);
      if (!users.isEmpty()) {
        admin.alterUserScramCredentials(users).all().get(30, TimeUnit.SECONDS);
      }
      if (!acls.isEmpty()) {
        admin.createAcls(acls).all().get(30, TimeUnit.SECONDS);
      }
    }
    System.err.println(
        "kafka: access applied: " + users.size() + " SCRAM users, " + acls.size() + " ACLs");
  }

  // The broker answers SASL before it has caught up with its metadata; describeCluster as
  // the super user succeeds once it serves requests.
  private static void waitForBroker(Admin admin, long timeoutSeconds) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);
    while (true) {
      try {
        if (!admin.describeCluster().nodes().get(10, TimeUnit.SECONDS).isEmpty()) {
          return;
        }
      } catch (ExecutionException error) {
        if (error.getCause() instanceof SaslAuthenticationException) {
          fail(
              "the broker refused the admin's credentials ("
                  + error.getCause().getMessage()
                  + "); the admin password is fixed when the data dir is formatted");
        }
        if (System.nanoTime() > deadline) {
          throw error;
        }
      }
      Thread.sleep(500);
    }
  }

  // "IdempotentWrite" -> "IDEMPOTENT_WRITE", "literal" -> "LITERAL": the enums' names.
  private static String constant(String name) {
    return name.replaceAll("([a-z])([A-Z])", "$1_$2").toUpperCase(java.util.Locale.ROOT);
  }

  private static void fail(String message) {
    System.err.println("kafka: ERROR: " + message);
    System.exit(1);
  }
}
