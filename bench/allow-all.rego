# Fallback policy for the benchmark when the default bundle is missing or denies the
# benchmark request: allow everything, with the same result shape as the seed policy
# (an object with allowed and reasons), so the PEP's code path is the same.
package tollgate.authz

decision := {"allowed": true, "reasons": []}
