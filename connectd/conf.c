/* conf.c: (stub) */
#include "connectd.h"
