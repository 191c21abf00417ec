// Applies the platform's Kafka access (users and ACLs) through the Admin API, in one JVM.
// Run by localinfra (infra/local/localinfra/kafka_access.py) with the broker's jars on the class
// path: `java -cp '<kafka libs>/*' KafkaAccess.java <admin client properties>`, the wanted state
// on stdin, one line each, so no password ever appears in a command line:
//   user <name> <password>
//   acl <principal> <resource type> <pattern type> <resource name> <operation>
// Users are upserted (SCRAM-SHA-512); ACLs not wanted are deleted, wanted ones created.
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class KafkaAccess {
    private static final int SCRAM_ITERATIONS = 4096;

    public static void main(String[] args) throws Exception {
        Properties admin = new Properties();
        try (var in = new FileInputStream(args[0])) {
            admin.load(in);
        }
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        Set<AclBinding> wanted = new HashSet<>();
        var stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = stdin.readLine()) != null; ) {
            String[] f = line.strip().split(" ");
            if (f[0].equals("user")) {
                var info = new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS);
                users.add(new UserScramCredentialUpsertion(f[1], info, f[2]));
            } else if (f[0].equals("acl")) {
                wanted.add(binding(f));
            } else if (!f[0].isEmpty()) {
                throw new IllegalArgumentException("unknown line kind " + f[0]);
            }
        }
        try (Admin client = Admin.create(admin)) {
            if (!users.isEmpty()) {
                client.alterUserScramCredentials(users).all().get();
            }
            Collection<AclBinding> existing = client.describeAcls(AclBindingFilter.ANY).values().get();
            List<AclBindingFilter> stale = existing.stream()
                .filter(b -> !wanted.contains(b)).map(AclBinding::toFilter).toList();
            if (!stale.isEmpty()) {
                client.deleteAcls(stale).all().get();
            }
            client.createAcls(wanted).all().get();
            System.out.printf("kafka access: %d users, %d ACLs, %d stale ACLs removed%n",
                users.size(), wanted.size(), stale.size());
        }
    }

    private static AclBinding binding(String[] f) {
        var resource = new ResourcePattern(
            ResourceType.fromString(f[2]), f[4], PatternType.fromString(f[3]));
        var entry = new AccessControlEntry(
            "User:" + f[1], "*", AclOperation.fromString(f[5]), AclPermissionType.ALLOW);
        if (resource.resourceType() == ResourceType.UNKNOWN
                || entry.operation() == AclOperation.UNKNOWN) {
            throw new IllegalArgumentException("unknown resource type or operation: " + String.join(" ", f));
        }
        return new AclBinding(resource, entry);
    }
}
