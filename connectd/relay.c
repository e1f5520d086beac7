/* relay.c: (stub) */
#include "connectd.h"
