/* accesslog.c: (stub) */
#include "connectd.h"
