/* A shared library that is not a vitalgate plugin: it exports a function, but not the entry
 * point vitalgate_plugin_v1. The gateway must refuse it with dlsym's message. */
int not_a_vitalgate_plugin(void);
int not_a_vitalgate_plugin(void) { return 42; }
