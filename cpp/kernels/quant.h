// placeholder: INT4/INT8 block formats and kernels (being written)
#pragma once
